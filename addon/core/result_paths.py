"""Where loop results live on disk: one folder per image, one numbered take per Generate, a short history.

No ``bpy`` module use. Layout (``<root>`` is ``stillflow/`` beside a saved .blend, else a per-session
folder under the extension's user folder)::

    <root>/<image name>/take_0001/frame_0000.png ... manifest.json
    <root>/<image name>/take_0002/...

A new take never overwrites the one Blender shows: it is written (or moved) whole into the next free
number, the loop Image is pointed at it, and only then are older takes beyond the history removed.
"""
from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import time
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = [
    "RESULTS_DIRNAME",
    "TAKE_PREFIX",
    "folder_name",
    "blend_results_root",
    "session_folder_name",
    "takes",
    "next_take",
    "prune_takes",
    "move_folder",
    "is_inside",
]

RESULTS_DIRNAME = "stillflow"
"""Folder beside a saved .blend that holds its results (``//stillflow/<image>/take_0001/...``)."""

TAKE_PREFIX = "take_"
_TAKE = re.compile(rf"^{TAKE_PREFIX}(\d+)$")


def folder_name(image_name: str) -> str:
    """A file-system-safe folder name for a still's results (its whole name: lake.png and lake.jpg differ)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", image_name).strip("._") or "loop"


def blend_results_root(blend_path: str) -> Path | None:
    """``<folder of the .blend>/stillflow`` for a saved file; None while the file is unsaved."""
    if not blend_path:
        return None
    return Path(blend_path).resolve().parent / RESULTS_DIRNAME


def session_folder_name(pid: int | None = None, started: float | None = None) -> str:
    """Name of this Blender session's folder for results of unsaved files (unique per process)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(started if started is not None else time.time()))
    return f"unsaved-{stamp}-{pid if pid is not None else os.getpid()}"


def takes(image_dir: Path) -> list[Path]:
    """The take folders of one image, oldest first (hidden staging folders are not takes)."""
    if not image_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in image_dir.iterdir() if p.is_dir() and (m := _TAKE.match(p.name))]
    return [p for _, p in sorted(found)]


def next_take(image_dir: Path) -> Path:
    """The folder for the next take of an image (one number past the highest existing take)."""
    existing = takes(image_dir)
    number = int(_TAKE.match(existing[-1].name).group(1)) + 1 if existing else 1
    return image_dir / f"{TAKE_PREFIX}{number:04d}"


def prune_takes(image_dir: Path, keep: int, current: Path) -> list[Path]:
    """Remove takes older than ``current`` beyond the newest ``keep`` of them; the removed folders.

    Takes newer than ``current`` (an undone Generate's) are left alone: a redo may show them again.
    """
    current = current.resolve()
    older = [p for p in takes(image_dir) if p.resolve() != current and _number(p) < _number(current)]
    doomed = older[:max(0, len(older) - max(0, keep))]
    for folder in doomed:
        shutil.rmtree(folder, ignore_errors=True)
        log.info("removed old result %s", folder)
    return doomed


def _number(take: Path) -> int:
    """A take folder's number (0 for a folder that is not a take)."""
    match = _TAKE.match(take.name)
    return int(match.group(1)) if match else 0


def is_inside(path: Path, folder: Path) -> bool:
    """True when ``path`` is ``folder`` or lies under it (both resolved)."""
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def move_folder(source: Path, target: Path) -> Path:
    """Move a finished result folder to ``target`` (which must not exist) whole; ``target``.

    A rename when both are on one file system; otherwise a copy into a hidden sibling of ``target``
    that is renamed into place, then the source is removed, so ``target`` never holds half a loop.
    """
    source, target = source.resolve(), target.resolve()
    if source == target:
        return target
    if target.exists():
        raise FileExistsError(f"result folder {target} already exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(source, target)
        return target
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
    staging = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        shutil.copytree(source, staging)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(source, ignore_errors=True)
    return target
