"""Build the installable Stillflow extension zips: dist/stillflow-<version>-<platform>.zip.

Usage (any Python 3.11 with pip; the backend venv works)::

    python scripts/build_extension.py            # -> dist/stillflow-0.1.0-{linux_x64,windows_x64,macos_arm64}.zip

    python scripts/build_extension.py --backend-bundle   # also dist/stillflow-backend-<this platform>.zip

Steps: download the pyzmq and msgpack wheels for every platform from PyPI (cached in
build/wheels/), stage addon/ + the torch-free backend modules (as _vendor/stillflow/) + the
shaders + the wheels + blender_manifest.toml (with the wheel list added) in build/extension/,
add the whole backend as a wheel data file (backend/stillflow-<version>-py3-none-any.whl, which
Install Backend puts into a private environment; it is not in the manifest's ``wheels``, which
Blender would extract into its own Python), validate with the bpy wheel's blender_ext.py and
build one zip per platform. ``--backend-bundle`` then writes the offline wheelhouse
(scripts/build_backend_bundle.py).
"""
from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from backend_wheel import build_wheel
from build_backend_bundle import PLATFORM_TAGS, PYTHON_VERSION, BundleError, build_bundle

log = logging.getLogger("build_extension")

REPO = Path(__file__).resolve().parents[1]

WHEELS = ("pyzmq==27.3.0", "msgpack==1.2.4")
"""Pinned to the versions the add-on tests run with (.venv-blender)."""

VENDORED = ("__init__.py", "errors.py", "options.py", "progress.py", "region_file.py", "link/", "io/__init__.py",
            "io/frames.py", "stages/__init__.py", "stages/hints.py", "stages/regions.py", "stages/motion_file.py",
            "stages/sway.py", "stages/sway_split.py")
"""Torch-free backend modules the add-on imports (relative imports only), copied into _vendor/stillflow/.
A name ending in "/" is a whole subpackage: ``link/`` (wire protocol and client) travels entire."""


BLENDER_EXT = Path("bpy/5.0/scripts/addons_core/bl_pkg/cli/blender_ext.py")


class BuildError(Exception):
    """A build step failed; the message says which and what to do."""


def find_blender_ext(bpy_env: Path) -> Path:
    """blender_ext.py inside the bpy wheel installed in ``bpy_env``."""
    for site in (*bpy_env.glob("lib/python3.*/site-packages"), bpy_env / "Lib" / "site-packages"):
        candidate = site / BLENDER_EXT
        if candidate.is_file():
            return candidate
    raise BuildError(f"the bpy environment {bpy_env} with bpy 5.0.1 was not found; run the setup first "
                     f"(python3.11 -m venv {bpy_env} && {bpy_env}/bin/pip install bpy==5.0.1 pyzmq msgpack pytest)")


def download_wheels(cache: Path) -> dict[str, list[Path]]:
    """pyzmq and msgpack wheels for every platform (downloaded once into ``cache/<platform>``)."""
    found: dict[str, list[Path]] = {}
    for platform, tags in PLATFORM_TAGS.items():
        folder = cache / platform
        wheels = sorted(folder.glob("*.whl"))
        names = {w.name.split("-")[0].lower() for w in wheels}
        if not {"pyzmq", "msgpack"} <= names:
            folder.mkdir(parents=True, exist_ok=True)
            command = [sys.executable, "-m", "pip", "download", *WHEELS, "--only-binary=:all:", "--no-deps",
                       "--python-version", PYTHON_VERSION, "--dest", str(folder), "--quiet"]
            for tag in tags:
                command += ["--platform", tag]
            log.info("downloading wheels for %s", platform)
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise BuildError(f"pip could not download {', '.join(WHEELS)} for {platform}: "
                                 f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}; "
                                 "check the connection to PyPI")
            wheels = sorted(folder.glob("*.whl"))
        found[platform] = wheels
    return found


def stage(stage_dir: Path, wheels: dict[str, list[Path]]) -> None:
    """Lay out the extension's files in ``stage_dir``."""
    if stage_dir.exists():
        shutil.rmtree(stage_dir)
    shutil.copytree(REPO / "addon", stage_dir, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "_vendor"))
    for name in VENDORED:
        source = REPO / "backend" / "stillflow" / name
        target = stage_dir / "_vendor" / "stillflow" / name
        if name.endswith("/") and (source / "__init__.py").is_file():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            continue
        if not source.is_file():
            raise BuildError(f"backend module {source} is missing; the add-on needs it")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    build_wheel(stage_dir / "backend")
    shaders = REPO / "shaders"
    if shaders.is_dir():
        shutil.copytree(shaders, stage_dir / "shaders", ignore=shutil.ignore_patterns("*~"))
    entries = []
    for platform_wheels in wheels.values():
        for wheel in platform_wheels:
            target = stage_dir / "wheels" / wheel.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(wheel, target)
            entries.append(f'  "./wheels/{wheel.name}",')
    manifest = (REPO / "blender_manifest.toml").read_text(encoding="utf-8").splitlines()
    first_table = next(i for i, line in enumerate(manifest) if line.startswith("["))
    wheel_list = ["wheels = [", *sorted(set(entries)), "]", ""]
    (stage_dir / "blender_manifest.toml").write_text(
        "\n".join(manifest[:first_table] + wheel_list + manifest[first_table:]) + "\n", encoding="utf-8")


def run_blender_ext(blender_ext: Path, bpy_python: Path, *args: str) -> str:
    """Run blender_ext.py with the bpy environment's interpreter; its output, BuildError on failure."""
    done = subprocess.run([str(bpy_python), str(blender_ext), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise BuildError(f"blender_ext.py {args[0]} failed: {(done.stdout + done.stderr).strip()}")
    return done.stdout


def build(out_dir: Path, *, stage_dir: Path, wheel_cache: Path, bpy_env: Path) -> list[Path]:
    """Download, stage, validate and build; the zip files written."""
    blender_ext = find_blender_ext(bpy_env)
    bpy_python = next((p for p in (bpy_env / "bin" / "python", bpy_env / "Scripts" / "python.exe") if p.is_file()),
                      Path(sys.executable))
    stage(stage_dir, download_wheels(wheel_cache))
    run_blender_ext(blender_ext, bpy_python, "validate", str(stage_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    version = tomllib.loads((stage_dir / "blender_manifest.toml").read_text(encoding="utf-8"))["version"]
    run_blender_ext(blender_ext, bpy_python, "build", "--source-dir", str(stage_dir),
                    "--output-dir", str(out_dir), "--split-platforms")
    return sorted(out_dir.glob(f"stillflow-{version}-*.zip"))


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; exit status 0 on success, 1 with one message on failure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="folder for the zips (default dist/)")
    parser.add_argument("--stage", type=Path, default=REPO / "build" / "extension", help="staging folder")
    parser.add_argument("--wheels", type=Path, default=REPO / "build" / "wheels", help="wheel cache folder")
    parser.add_argument("--bpy-env", type=Path, default=REPO / ".venv-blender",
                        help="virtual environment with bpy 5.0.1 (for blender_ext.py)")
    parser.add_argument("--backend-bundle", nargs="?", const="", default=None, metavar="PLATFORM",
                        help="also write dist/stillflow-backend-PLATFORM.zip (default: this computer's platform), "
                             "the offline wheelhouse for Install Backend")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        zips = build(args.out.resolve(), stage_dir=args.stage.resolve(), wheel_cache=args.wheels.resolve(),
                     bpy_env=args.bpy_env.resolve())
        if args.backend_bundle is not None:
            zips.append(build_bundle(args.out.resolve(), platform=args.backend_bundle or None))
    except (BuildError, BundleError) as error:
        print(f"build_extension: {error}", file=sys.stderr)
        return 1
    for path in zips:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
