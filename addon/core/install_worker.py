"""Make one private backend environment; runs as its own process, never inside Blender.

Standard library only (it runs as ``<Blender's python> -I install_worker.py …``, so it imports
nothing from the add-on). ``core.installer.Installer`` starts it in its own process group with
stdout and stderr going to the install log, reads the log and kills the group on Cancel.

Steps: unpack a bundle zip next to the new environment, make the environment (``python -m venv``
with this interpreter, or a clone of the live one for Update: hard links where possible), ``pip
install`` the add-on's stillflow wheel with its dependencies (from the bundle with ``--no-index``
and no pip configuration, or from the package index), then import it from a neutral folder.
Between pip's own lines it writes markers the add-on reads: ``@@stillflow phase NAME``,
``@@stillflow version X``, ``@@stillflow error LINE``. Exit status 0 only when the environment works.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

MARK = "@@stillflow"

VERIFY = "import stillflow, torch, numpy, cv2, zmq, msgpack; print('@@stillflow version', stillflow.__version__)"
"""What a working backend environment imports (the engine's heavy dependencies and the service's)."""


def say(key: str, value: str) -> None:
    """Write one marker line to the log."""
    print(f"{MARK} {key} {value}", flush=True)


def python_in(env: Path) -> Path:
    """The interpreter of a virtual environment."""
    return env / "Scripts" / "python.exe" if sys.platform == "win32" else env / "bin" / "python"


def run(command: list[str], **kwargs: object) -> int:
    """Run a child with our stdout/stderr (the log); its exit status."""
    print("$ " + " ".join(command), flush=True)
    return subprocess.run(command, stdin=subprocess.DEVNULL, **kwargs).returncode  # type: ignore[arg-type]


def link_or_copy(source: str, target: str) -> str:
    """Hard-link a file (no disk used; pip replaces files, never edits them), copying where links fail."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
    return target


def unpack(bundle: Path, folder: Path) -> Path:
    """A bundle zip's wheels unpacked into ``folder`` (a folder bundle is used as it is)."""
    if bundle.is_dir():
        return bundle
    say("phase", "unpack")
    with zipfile.ZipFile(bundle) as archive:
        for name in archive.namelist():
            if name.endswith(".whl") and "/" not in name:
                archive.extract(name, folder)
    return folder


def make_env(env: Path, clone: Path | None) -> int:
    """Create the environment (a fresh venv, or a clone of ``clone``); 0 on success."""
    if clone is not None:
        say("phase", "clone")
        shutil.copytree(clone, env, symlinks=True, copy_function=link_or_copy)
        return 0
    say("phase", "venv")
    return run([sys.executable, "-m", "venv", str(env)])


def pip_install(env: Path, wheel: Path, links: Path | None, index_url: str) -> int:
    """pip install the wheel and its dependencies into ``env``; pip's exit status."""
    say("phase", "pip")
    command = [str(python_in(env)), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
               "--progress-bar", "off", str(wheel)]
    environ = dict(os.environ)
    if links is not None:
        # offline: nothing but the bundle, whatever pip configuration the machine has
        command += ["--isolated", "--no-index", "--find-links", str(links)]
        environ["PIP_CONFIG_FILE"] = os.devnull
    elif index_url:
        command += ["--extra-index-url", index_url]
    return run(command, env=environ)


def verify(env: Path) -> int:
    """Import the backend from a neutral folder in the new environment; 0 when it works."""
    say("phase", "verify")
    with tempfile.TemporaryDirectory(prefix="stillflow-verify-") as neutral:
        return run([str(python_in(env)), "-c", VERIFY], cwd=neutral)


def main(argv: list[str] | None = None) -> int:
    """Build the environment the arguments describe; 0 when it works."""
    parser = argparse.ArgumentParser(description="make a private Stillflow backend environment")
    parser.add_argument("--env", type=Path, required=True, help="new environment folder (must not exist)")
    parser.add_argument("--wheel", type=Path, required=True, help="the stillflow wheel to install")
    parser.add_argument("--bundle", type=Path, default=None, help="offline bundle: zip or folder of wheels")
    parser.add_argument("--index-url", default="", help="extra package index (e.g. for a CUDA build of torch)")
    parser.add_argument("--clone", type=Path, default=None, help="start from a copy of this environment")
    args = parser.parse_args(argv)
    unpacked = args.env.parent / f".{args.env.name}.bundle"
    try:
        links = unpack(args.bundle, unpacked) if args.bundle is not None else None
        for step in (lambda: make_env(args.env, args.clone),
                     lambda: pip_install(args.env, args.wheel, links, args.index_url),
                     lambda: verify(args.env)):
            status = step()
            if status != 0:
                return status
    except (OSError, zipfile.BadZipFile) as error:
        say("error", f"{type(error).__name__}: {error}")
        return 1
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)
    say("phase", "done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
