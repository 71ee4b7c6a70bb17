"""The backend's private environment under the extension's user folder: where it is, which one is live.

No ``bpy`` module use: the add-on passes the folder (``extension_path_user(__package__)/backend``).

Layout::

    backend/current.json      {"env": "env-…", "version": "0.1.0"}: the live environment (replaced whole)
    backend/envs/env-…/       one virtual environment per install; only the one current.json names is live
    backend/install.log       pip's output of the latest install (named in every failure)

A new environment is made beside the live one and becomes live only when ``commit`` replaces
current.json (one ``os.replace``), so a cancelled or failed install never touches the working one.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from . import platforms

__all__ = ["BackendHome", "Installed", "Bundle", "env_python", "bundled_wheel", "read_bundle", "compare_versions",
           "version_problem", "space_problem", "ONLINE_BYTES"]

ONLINE_BYTES = 7_000_000_000
"""Disk an install from the package index needs: a CUDA torch with its libraries is about 5 GB
installed, plus pip's download cache while it installs."""

_SLACK = 1.15
"""Room beyond the estimate (pip's temporary files, bytecode)."""


def env_python(env_dir: Path) -> Path:
    """The interpreter inside a virtual environment made by ``python -m venv``."""
    return env_dir / "Scripts" / "python.exe" if sys.platform == "win32" else env_dir / "bin" / "python"


@dataclass(frozen=True)
class Installed:
    """The live private environment: its folder, interpreter and the stillflow version installed there."""

    env_dir: Path
    python: Path
    version: str


class BackendHome:
    """The private environments in one folder; ``current()`` is the live one."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.envs = self.root / "envs"
        self.record = self.root / "current.json"
        self.log_path = self.root / "install.log"

    def current(self) -> Installed | None:
        """The live environment, or None when none is installed (or its interpreter is gone)."""
        try:
            data = json.loads(self.record.read_text(encoding="utf-8"))
            env_dir = self.envs / str(data["env"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        python = env_python(env_dir)
        return Installed(env_dir, python, str(data.get("version", ""))) if python.is_file() else None

    def new_env_dir(self) -> Path:
        """A fresh, unused folder name for the next environment."""
        self.envs.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for n in range(1000):
            candidate = self.envs / f"env-{stamp}-{n}"
            if not candidate.exists():
                return candidate
        raise FileExistsError(f"no free environment name in {self.envs}")

    def commit(self, env_dir: Path, version: str) -> None:
        """Make ``env_dir`` the live environment (current.json replaced whole)."""
        partial = self.record.with_name(f".current-{os.getpid()}.json")
        partial.write_text(json.dumps({"env": env_dir.name, "version": version}) + "\n", encoding="utf-8")
        os.replace(partial, self.record)

    def forget(self) -> Installed | None:
        """Make no environment live (Remove Backend); the one that was."""
        installed = self.current()
        self.record.unlink(missing_ok=True)
        return installed

    def leftovers(self) -> list[Path]:
        """Folders under envs/ that are not live: older environments, a killed install's half one."""
        live = self.current()
        if not self.envs.is_dir():
            return []
        return sorted(p for p in self.envs.iterdir() if live is None or p != live.env_dir)

    def trash(self, folder: Path) -> Path:
        """Rename ``folder`` out of the way (instant) so it can be removed in the background; the new name."""
        target = self.envs / f".trash-{folder.name}-{time.monotonic_ns()}"
        folder.rename(target)
        return target


@dataclass(frozen=True)
class Bundle:
    """An offline backend bundle (zip or folder of wheels) as the install reads it."""

    path: Path
    wheels: tuple[str, ...]
    platform: str = ""
    installed_bytes: int = 0
    download_bytes: int = 0


def read_bundle(path: Path) -> Bundle:
    """The bundle at ``path`` (a stillflow-backend-<platform>.zip or a folder of wheels).

    Raises:
        ValueError: one line saying what is wrong with it.
    """
    path = Path(path)
    if path.is_dir():
        wheels = tuple(sorted(p.name for p in path.glob("*.whl")))
        if not wheels:
            raise ValueError(f"the folder {path} holds no .whl files; pick a stillflow-backend-<platform>.zip "
                             "or a folder of wheels")
        sizes = [(path / name).stat().st_size for name in wheels]
        return Bundle(path, wheels, installed_bytes=3 * sum(sizes), download_bytes=sum(sizes))
    if not path.is_file():
        raise ValueError(f"the backend bundle {path} does not exist")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            info = json.loads(archive.read("bundle.json")) if "bundle.json" in names else {}
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise ValueError(f"{path.name} is not a backend bundle ({error}); build one with "
                         "scripts/build_extension.py --backend-bundle") from None
    wheels = tuple(sorted(n for n in names if n.endswith(".whl") and "/" not in n))
    if not wheels:
        raise ValueError(f"{path.name} holds no wheels; build one with scripts/build_extension.py --backend-bundle")
    size = path.stat().st_size
    bundle = Bundle(path, wheels, str(info.get("platform", "")), int(info.get("installed_bytes", 3 * size)),
                    int(info.get("download_bytes", size)))
    here = platforms.file_name(platforms.this_platform())
    if bundle.platform and bundle.platform != here:
        raise ValueError(f"{path.name} is the backend bundle for {bundle.platform}; this computer needs the one "
                         f"for {here} (stillflow-backend-{here}.zip)")
    return bundle


def bundled_wheel(addon_dir: Path) -> Path | None:
    """The stillflow wheel the extension zip carries (``backend/*.whl``), or None in a source checkout."""
    wheels = sorted(Path(addon_dir, "backend").glob("stillflow-*.whl"))
    return wheels[-1] if wheels else None


def _release(version: str) -> tuple[int, ...]:
    """The numeric release part of a version ('0.1.0rc1+cpu' -> (0, 1, 0))."""
    found = re.match(r"\s*v?(\d+(?:\.\d+)*)", version)
    return tuple(int(p) for p in found.group(1).split(".")) if found else ()


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as release ``a`` is older than, the same as or newer than ``b``."""
    left, right = _release(a), _release(b)
    width = max(len(left), len(right))
    left, right = left + (0,) * (width - len(left)), right + (0,) * (width - len(right))
    return (left > right) - (left < right)


def version_problem(backend: str, addon: str) -> str:
    """One line when the backend's version differs from the add-on's ('' when they match)."""
    order = compare_versions(backend, addon)
    if order == 0:
        return ""
    older, newer = (("backend", "add-on") if order < 0 else ("add-on", "backend"))
    versions = {"backend": backend, "add-on": addon}
    return (f"the Stillflow {older} ({versions[older]}) is older than the {newer} ({versions[newer]}); press "
            "Update Backend in the Stillflow preferences" + ("" if order < 0 else " (or install the newer add-on)"))


def space_problem(folder: Path, needed: int) -> str:
    """One line when the disk holding ``folder`` has less than ``needed`` bytes (plus slack) free, else ''."""
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    wanted = int(needed * _SLACK)
    if free >= wanted:
        return ""
    return (f"not enough disk space for the backend: it needs about {wanted / 1e9:.1f} GB in {folder}, "
            f"{free / 1e9:.1f} GB are free; free some space and press Install Backend again")
