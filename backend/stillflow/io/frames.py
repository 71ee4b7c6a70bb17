"""Output folders written whole or not at all: temporary siblings renamed into place.

Only a Stillflow result (a folder whose manifest.json carries ``stillflow_version``), an empty
folder or a missing one is ever replaced. Staging names carry the host and PID of their run, so
the next run into the same parent removes those of dead runs (and puts back an earlier result
whose swap a crash interrupted).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from ..errors import InputError

__all__ = ["MANIFEST", "atomic_dir", "atomic_file", "atomic_outputs", "check_writable_parent", "check_replaceable",
           "check_not_inputs", "is_result", "clean_stale"]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
"""The file that makes a folder a Stillflow result (it holds ``stillflow_version``)."""

STALE_AFTER_S = 24 * 3600.0
"""Staging leftovers this old are removed even when their run cannot be checked (another host)."""

_HOST = hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:6]
_STAGING = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<host>[0-9a-f]{6})-(?P<pid>\d+)-[0-9a-f]{8}"
                      r"(?:\.[A-Za-z0-9]+)?$")
_LEGACY = re.compile(r"^\..+\.(?:tmp-[0-9a-f]{8}(?:\.[A-Za-z0-9]+)?|old-\d+-[0-9a-f]+)$")
_KEEP = "choose a new or empty folder, or an earlier Stillflow result"


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


def is_result(folder: Path) -> bool:
    """True when ``folder/manifest.json`` is a Stillflow manifest (a map with ``stillflow_version``)."""
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "stillflow_version" in data


def check_replaceable(target: Path) -> None:
    """Raise InputError unless ``target`` is missing, an empty folder or a Stillflow result."""
    if not os.path.lexists(target):
        return
    if not target.is_dir():
        raise InputError(f"output folder {target} exists and is a file: it is not replaced", hint=_KEEP)
    try:
        with os.scandir(target) as entries:
            empty = next(entries, None) is None
    except OSError as exc:
        raise InputError(f"output folder {target} cannot be read: {exc.strerror}", hint=_KEEP) from None
    if not empty and not is_result(target):
        raise InputError(f"output folder {target} holds files and is not a Stillflow result (no {MANIFEST} with "
                         "stillflow_version): it is not replaced", hint=_KEEP)


def check_not_inputs(folder: Path, video: Path | None, inputs: Mapping[str, Any]) -> None:
    """Raise InputError when the output folder is or holds an input, or the video is one.

    ``inputs`` maps a description ("image", "mask", ...) to a path, or to anything else (arrays,
    "auto", None), which is skipped.
    """
    for what, value in inputs.items():
        if not isinstance(value, (str, os.PathLike)) or value == "auto":
            continue
        path = Path(value).resolve()
        if path == folder or folder in path.parents:
            verb = "is" if path == folder else "holds"
            raise InputError(f"the output folder {folder} {verb} the {what} {path}: writing there would destroy it",
                             hint="choose another --out")
        if video is not None and (path == video or video in path.parents):
            raise InputError(f"the video {video} is the {what}: writing it would destroy it",
                             hint="choose another --video")


def check_file_target(target: Path) -> None:
    """Raise InputError when ``target`` (a video to write) exists as a folder."""
    if os.path.lexists(target) and target.is_dir():
        raise InputError(f"{target} exists and is a folder: it is not replaced", hint="choose another --video")


@contextlib.contextmanager
def atomic_outputs(folder: str | Path, file: str | Path | None = None) -> Iterator[tuple[Path, Path | None]]:
    """Yield a staging folder (and a staging path for ``file``); on success both replace their targets together.

    On any exception (cancel included) the staging is deleted and existing targets are left
    exactly as they were. A ``file`` inside ``folder`` is staged inside the staging folder.
    The folder is replaced only if it is missing, empty or a Stillflow result (InputError otherwise).
    """
    folder = Path(folder).resolve()
    target_file = Path(file).resolve() if file is not None else None
    for target in (folder, target_file):
        if target is not None:
            check_writable_parent(target)
    check_replaceable(folder)
    if target_file is not None:
        check_file_target(target_file)
    for parent in {folder.parent, *((target_file.parent,) if target_file is not None else ())}:
        clean_stale(parent)
    staging = _new_sibling(folder, "tmp", lambda path: os.mkdir(path, 0o777))
    inner = target_file is not None and folder in target_file.parents
    staged_file: Path | None = None
    try:
        if target_file is not None and inner:
            staged_file = staging / target_file.relative_to(folder)
            staged_file.parent.mkdir(parents=True, exist_ok=True)
        elif target_file is not None:
            staged_file = _new_sibling(target_file, "tmp", _create_file)
        yield staging, staged_file
        check_replaceable(folder)  # either may have changed while the frames were rendered
        if target_file is not None:
            check_file_target(target_file)
        pairs = [(staging, folder)]
        if staged_file is not None and target_file is not None and not inner:
            pairs.append((staged_file, target_file))
        _swap_in(pairs)
    except BaseException:
        _remove(staging)
        if staged_file is not None and not inner:
            _remove(staged_file)
        raise


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``target``; on success it replaces ``target`` whole.

    On any exception (cancel included) the temporary folder is deleted and an existing
    ``target`` is left exactly as it was. Only a missing or empty folder or a Stillflow result
    is replaced: write a manifest.json with ``stillflow_version`` into the folder to be able to
    replace it later.
    """
    with atomic_outputs(target) as (staging, _):
        yield staging


@contextlib.contextmanager
def atomic_file(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` (same suffix); on success it replaces ``target``."""
    target = Path(target).resolve()
    check_writable_parent(target)
    check_file_target(target)
    staging = _new_sibling(target, "tmp", _create_file)
    try:
        yield staging
        os.replace(staging, target)
    finally:
        if staging.exists():
            staging.unlink()


def clean_stale(parent: Path) -> list[Path]:
    """Remove the staging leftovers of dead or long-gone runs in ``parent``; returns what was removed.

    A backup (``.NAME.old-*``) whose target is missing is an earlier result a crash left mid-swap:
    it is moved back instead of removed.
    """
    removed: list[Path] = []
    try:
        with os.scandir(parent) as scan:
            entries = [entry for entry in scan if entry.name.startswith(".")]
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = _STAGING.match(entry.name)
        if match is None and not _LEGACY.match(entry.name):
            continue
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        dead = match is not None and _run_is_dead(match["host"], int(match["pid"]))
        if not dead and age < STALE_AFTER_S:
            continue
        path = parent / entry.name
        try:
            if match is not None and match["kind"] == "old" and not os.path.lexists(parent / match["name"]):
                os.rename(path, parent / match["name"])
                log.warning("put back %s, left mid-swap by an interrupted run", parent / match["name"])
                continue
            _remove(path)
        except OSError as exc:
            log.warning("could not remove the stale staging %s: %s", path, exc.strerror)
            continue
        log.info("removed the stale staging %s", path)
        removed.append(path)
    return removed


def _run_is_dead(host: str, pid: int) -> bool:
    """True when the run that made a staging name is known to be gone (same host, no such process)."""
    if host != _HOST or pid == os.getpid() or sys.platform == "win32":
        return False  # Windows: os.kill(pid, 0) would terminate the process; age decides there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # it exists (another user's process)
    return False


def _swap_in(pairs: list[tuple[Path, Path]]) -> None:
    """Move each staged path onto its target, all or none: a failure moves back what was moved."""
    moves: list[tuple[Path, Path]] = []
    backups: list[Path] = []
    try:
        for staged, target in pairs:
            if os.path.lexists(target):
                backup = _sibling_name(target, "old", "")
                os.rename(target, backup)
                moves.append((target, backup))
                backups.append(backup)
            os.rename(staged, target)
            moves.append((staged, target))
    except BaseException:
        for source, moved_to in reversed(moves):
            os.rename(moved_to, source)
        raise
    for backup in backups:
        _remove(backup)


def _remove(path: Path) -> None:
    """Delete a file, link or folder tree (a link itself, never what it points to)."""
    if not os.path.lexists(path):
        return
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _create_file(path: Path) -> None:
    """Create an empty file, failing when it exists."""
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))


def _sibling_name(target: Path, kind: str, suffix: str) -> Path:
    """A hidden name beside ``target`` that says which host and process made it."""
    stem = target.stem if suffix else target.name
    return target.parent / f".{stem}.{kind}-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}{suffix}"


def _new_sibling(target: Path, kind: str, create: Callable[[Path], None]) -> Path:
    """A new hidden path beside ``target``, made by ``create``, with the permissions ``target`` will have.

    ``create`` must fail on an existing path. tempfile's 0700/0600 would be moved into place with the
    result (a render folder others on a farm or a web server cannot read): plain creation applies
    the umask instead, and a result that replaces an earlier one keeps the earlier one's mode.
    """
    for _ in range(100):
        path = _sibling_name(target, kind, target.suffix)
        try:
            create(path)
        except FileExistsError:
            continue
        if target.exists():
            shutil.copymode(target, path)
        return path
    raise FileExistsError(f"no free temporary name beside {target}")
