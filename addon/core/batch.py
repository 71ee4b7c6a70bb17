"""Helpers for scripted batch renders: finding the stills of a folder.

No ``bpy`` module use.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

__all__ = ["find_stills"]


def find_stills(folder: Path, patterns: Iterable[str]) -> list[Path]:
    """Files in ``folder`` matching any glob pattern (case-insensitive suffix), sorted by name, no duplicates."""
    if not folder.is_dir():
        return []
    wanted = [p.strip().lower() for p in patterns if p.strip()]
    found = {path for path in folder.iterdir()
             if path.is_file() and any(Path(path.name.lower()).match(p) for p in wanted)}
    return sorted(found, key=lambda p: p.name)

