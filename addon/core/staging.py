"""Remove staging folders (``.<name>.tmp-*``) that a killed or cancelled job left beside its result folder.

No ``bpy`` module use. ``stillflow.io.frames.atomic_dir`` writes into ``.<name>.tmp-<hex>`` beside the
target and renames it into place; a backend killed mid-job leaves that folder behind.
"""
from __future__ import annotations

import logging
import re
import shutil
import time
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["remove_for", "remove_stale", "STALE_AFTER_S"]

STALE_AFTER_S = 3600.0
"""A staging folder untouched this long belongs to no live job (a job touches it with every frame)."""

_STAGING = re.compile(r"^\..+\.tmp-[0-9a-f]+(\.[^.]*)?$")


def remove_for(out_dir: str | Path) -> int:
    """Remove the staging folders of one job's result folder (the job has ended); how many."""
    target = Path(out_dir)
    if not target.parent.is_dir():
        return 0
    removed = 0
    for path in target.parent.glob(f".{glob_escape(target.stem)}.tmp-*{glob_escape(target.suffix)}"):
        if path.is_dir() and _STAGING.match(path.name):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def remove_stale(folder: str | Path, *, older_than: float = STALE_AFTER_S) -> int:
    """Remove staging folders in ``folder`` untouched for ``older_than`` seconds; how many."""
    root = Path(folder)
    if not root.is_dir():
        return 0
    now, removed = time.time(), 0
    for path in root.iterdir():
        try:
            stale = _STAGING.match(path.name) and path.is_dir() and now - path.stat().st_mtime > older_than
        except OSError:
            continue
        if stale:
            shutil.rmtree(path, ignore_errors=True)
            log.info("removed the staging folder %s left by an earlier job", path)
            removed += 1
    return removed


def glob_escape(name: str) -> str:
    """``name`` with glob wildcards escaped."""
    return re.sub(r"([*?\[])", r"[\1]", name)
