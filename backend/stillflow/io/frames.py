"""Output folders written whole or not at all: a temporary sibling folder renamed into place."""
from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
from pathlib import Path
from typing import Callable, Iterator

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
    staging = _new_sibling(target, lambda path: os.mkdir(path, 0o777))
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
    staging = _new_sibling(target, lambda path: os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)))
    try:
        yield staging
        os.replace(staging, target)
    finally:
        if staging.exists():
            staging.unlink()


def _new_sibling(target: Path, create: Callable[[Path], None]) -> Path:
    """A new hidden path beside ``target``, made by ``create``, with the permissions ``target`` will have.

    ``create`` must fail on an existing path. tempfile's 0700/0600 would be moved into place with the
    result (a render folder others on a farm or a web server cannot read): plain creation applies
    the umask instead, and a result that replaces an earlier one keeps the earlier one's mode.
    """
    for _ in range(100):
        path = target.parent / f".{target.stem}.tmp-{secrets.token_hex(4)}{target.suffix}"
        try:
            create(path)
        except FileExistsError:
            continue
        if target.exists():
            shutil.copymode(target, path)
        return path
    raise FileExistsError(f"no free temporary name beside {target}")
