"""Build the offline backend bundle: dist/stillflow-backend-<platform>.zip, a wheelhouse for Install Backend.

Usage (any Python 3.11 with pip and access to a package index; the backend venv works)::

    python scripts/build_backend_bundle.py                         # this computer's platform
    python scripts/build_backend_bundle.py --platform windows-x64 --torch "torch==2.13.0"

The zip holds the stillflow wheel built from this checkout, every wheel it needs for that platform
and Blender's Python (3.11), downloaded with ``pip download --only-binary=:all:``, and
``bundle.json`` (platform, Python, version, wheel names, download and installed sizes). Studios and
render farms hand it to Install Backend, which then installs with no network at all. The zip is
written next to its final name and moved into place whole.
"""
from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from addon.core.platforms import PYTHON_VERSION, file_name, this_platform  # noqa: E402
from backend_wheel import build_wheel  # noqa: E402

log = logging.getLogger("build_backend_bundle")

PLATFORM_TAGS = {
    "linux-x64": ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_26_x86_64",
                  "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
    "windows-x64": ("win_amd64",),
    "macos-arm64": ("macosx_11_0_arm64", "macosx_12_0_arm64", "macosx_13_0_arm64", "macosx_14_0_arm64"),
}
"""pip --platform tags per Blender platform name (the extension's small wheels use them too)."""


class BundleError(Exception):
    """A bundle step failed; the message says which and what to do."""


def installed_bytes(wheel: Path) -> int:
    """Bytes the wheel's files take once installed (the sum of its uncompressed entries)."""
    with zipfile.ZipFile(wheel) as archive:
        return sum(entry.file_size for entry in archive.infolist())


def download(wheel: Path, folder: Path, platform: str, *, constraints: list[str], pip_args: list[str]) -> None:
    """``pip download`` the wheel and everything it needs for ``platform`` into ``folder``."""
    command = [sys.executable, "-m", "pip", "download", str(wheel), "--dest", str(folder), "--only-binary=:all:",
               "--python-version", PYTHON_VERSION, "--disable-pip-version-check", "--quiet"]
    for tag in PLATFORM_TAGS[platform]:
        command += ["--platform", tag]
    if constraints:
        constraint_file = folder.parent / "constraints.txt"
        constraint_file.write_text("\n".join(constraints) + "\n", encoding="utf-8")
        command += ["--constraint", str(constraint_file)]
    log.info("downloading the backend's wheels for %s", platform)
    done = subprocess.run(command + pip_args, capture_output=True, text=True)
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")] or done.stderr.splitlines()
        raise BundleError(f"pip could not download the backend's wheels for {platform}: "
                          f"{errors[-1] if errors else done.returncode}")


def build_bundle(out_dir: Path, *, platform: str | None = None, constraints: tuple[str, ...] = (),
                 pip_args: tuple[str, ...] = ()) -> Path:
    """Write dist/stillflow-backend-<platform>.zip; its path."""
    platform = platform or this_platform()
    if platform not in PLATFORM_TAGS:
        raise BundleError(f"unknown platform {platform!r}; choose one of {', '.join(PLATFORM_TAGS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"stillflow-backend-{file_name(platform)}.zip"
    with tempfile.TemporaryDirectory(prefix="stillflow-bundle-", dir=out_dir) as scratch:
        wheelhouse = Path(scratch) / "wheels"
        wheelhouse.mkdir()
        wheel = build_wheel(Path(scratch) / "own")
        download(wheel, wheelhouse, platform, constraints=list(constraints), pip_args=list(pip_args))
        wheels = sorted(wheelhouse.glob("*.whl"))
        manifest = {"platform": file_name(platform), "python": PYTHON_VERSION,
                    "stillflow": wheel.name.split("-")[1], "wheels": [w.name for w in wheels],
                    "download_bytes": sum(w.stat().st_size for w in wheels),
                    "installed_bytes": sum(installed_bytes(w) for w in wheels)}
        partial = Path(scratch) / target.name
        # wheels are compressed already: stored, so writing and reading the bundle costs one copy
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as bundle:
            bundle.writestr("bundle.json", json.dumps(manifest, indent=1) + "\n")
            for path in wheels:
                bundle.write(path, path.name)
        partial.replace(target)
    log.info("%s: %d wheels, %.0f MB to download, %.0f MB installed", target.name, len(manifest["wheels"]),
             manifest["download_bytes"] / 1e6, manifest["installed_bytes"] / 1e6)
    return target


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: print the bundle's path; status 1 with one line on failure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="output folder (default dist/)")
    parser.add_argument("--platform", choices=sorted(PLATFORM_TAGS), default=None,
                        help="Blender platform to bundle for (default: this computer's)")
    parser.add_argument("--torch", default="", metavar="SPEC",
                        help="pin the torch build, e.g. 'torch==2.13.0' (default: the newest pip finds)")
    parser.add_argument("--pip-arg", action="append", default=[], metavar="ARG",
                        help="extra argument for pip download, e.g. --pip-arg=--extra-index-url=URL (repeatable)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        print(build_bundle(args.out.resolve(), platform=args.platform,
                           constraints=(args.torch,) if args.torch else (), pip_args=tuple(args.pip_arg)))
    except BundleError as error:
        print(f"build_backend_bundle: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
