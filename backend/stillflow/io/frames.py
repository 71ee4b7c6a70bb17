"""Output folders written whole or not at all: a temporary sibling folder renamed into place."""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from ..errors import InputError

__all__ = ["atomic_dir", "atomic_file", "check_writable_parent"]

log = logging.getLogger(__name__)


def check_writable_parent(target: Path) -> None:
    """Raise InputError unless ``target``'s parent folder exists (or can be made) and is writable."""
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"output folder {parent} cannot be created: {exc.strerror}",
                         hint="choose another --out") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"output folder {parent} is not writable", hint="choose another --out")
    if target.exists() and not target.is_dir() and target.suffix == "":
        raise InputError(f"output path {target} exists and is not a folder", hint="choose another --out")


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``target``; on success it replaces ``target`` whole.

    On any exception (cancel included) the temporary folder is deleted and an existing
    ``target`` is left exactly as it was.
    """
    target = Path(target).resolve()
    check_writable_parent(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    backup = None
    if target.exists():
        backup = target.parent / f".{target.name}.old-{os.getpid()}-{id(staging):x}"
        os.rename(target, backup)
    try:
        os.rename(staging, target)
    except OSError:
        if backup is not None:
            os.rename(backup, target)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` (same suffix); on success it replaces ``target``."""
    target = Path(target).resolve()
    check_writable_parent(target)
    handle, name = tempfile.mkstemp(prefix=f".{target.stem}.tmp-", suffix=target.suffix, dir=target.parent)
    os.close(handle)
    staging = Path(name)
    try:
        yield staging
        os.replace(staging, target)
    finally:
        if staging.exists():
            staging.unlink()
