"""Helpers for scripted batch renders: stills of a folder, their own inputs, resume digests, the summary.

No ``bpy`` module use. Beside each still ``<name>.<ext>`` a batch looks for

- ``<name>_mask.png``: grayscale mask (white = moves), instead of the scene's mask;
- ``<name>_motion.npy``: a motion file, instead of the scene's motion source;
- ``<name>.hints.txt``: arrows and anchors in image pixels (x right, y down, as ``stillflow render
  --hint`` / ``--anchor``), one per line: ``x0,y0,x1,y1`` = arrow, ``x,y`` = anchor, ``#`` = comment.

A still without them uses the scene's settings.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .lib import load

__all__ = ["find_stills", "StillInputs", "still_inputs", "parse_hints", "inputs_digest", "BatchReport",
           "INPUTS_FILE"]

_errors = load("errors")

INPUTS_FILE = "inputs.json"
"""File in a take folder recording the digest of the inputs and options that made it (for resume)."""

_SIDECAR_SUFFIXES = ("_mask", "_motion", ".hints")


def find_stills(folder: Path, patterns: Iterable[str]) -> list[Path]:
    """Files in ``folder`` matching any glob pattern (case-insensitive suffix), sorted by name, no duplicates.

    A still's own inputs (``<name>_mask.png`` ...) are not stills themselves.
    """
    if not folder.is_dir():
        return []
    wanted = [p.strip().lower() for p in patterns if p.strip()]
    found = {path for path in folder.iterdir()
             if path.is_file() and any(Path(path.name.lower()).match(p) for p in wanted)
             and not path.stem.endswith(_SIDECAR_SUFFIXES)}
    return sorted(found, key=lambda p: p.name)


@dataclass(frozen=True)
class StillInputs:
    """The per-still input files found beside one still (None = use the scene's)."""

    mask: Path | None = None
    motion: Path | None = None
    hints: Path | None = None


def still_inputs(still: Path) -> StillInputs:
    """Look for ``<name>_mask.png``, ``<name>_motion.npy`` and ``<name>.hints.txt`` beside ``still``.

    Raises:
        InputError: both a motion file and a hints file are there (one motion source per still).
    """
    def beside(suffix: str) -> Path | None:
        path = still.with_name(still.stem + suffix)
        return path if path.is_file() else None

    found = StillInputs(mask=beside("_mask.png"), motion=beside("_motion.npy"), hints=beside(".hints.txt"))
    if found.motion is not None and found.hints is not None:
        raise _errors.InputError(f"{still.name} has both {found.motion.name} and {found.hints.name}",
                                 hint="keep one motion source per still")
    return found


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def parse_hints(text: str, where: str) -> tuple[tuple[tuple[float, float, float, float], ...],
                                                tuple[tuple[float, float], ...]]:
    """Arrows (x0, y0, x1, y1) and anchors (x, y) from a hints file's text.

    Raises:
        InputError: a line holds something else than 4 or 2 numbers, or the file has no arrow.
    """
    arrows: list[tuple[float, float, float, float]] = []
    anchors: list[tuple[float, float]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        # `stillflow batch` also reads a keyword first ("hint x0,y0,x1,y1", "anchor x,y")
        keyword = re.match(r"(hint|arrow|anchor)\b", line, flags=re.IGNORECASE)
        wanted = (2,) if keyword and keyword.group(1).lower() == "anchor" else (4,) if keyword else (2, 4)
        line = line[keyword.end():] if keyword else line
        values = [float(v) for v in _NUMBER.findall(line)]
        leftover = _NUMBER.sub("", line).replace(",", " ").split()
        if leftover or len(values) not in wanted:
            raise _errors.InputError(f"{where} line {number} is not 'x0,y0,x1,y1' (arrow) or 'x,y' (anchor): "
                                     f"{raw.strip()[:60]!r}", hint="write pixel coordinates, one hint per line")
        if len(values) == 4:
            arrows.append((values[0], values[1], values[2], values[3]))
        else:
            anchors.append((values[0], values[1]))
    if not arrows:
        raise _errors.InputError(f"{where} has no arrow", hint="add a line x0,y0,x1,y1 (image pixels)")
    return tuple(arrows), tuple(anchors)


def inputs_digest(*, image: Any, mask: Any, motion: dict[str, Any], options: dict[str, Any],
                  files: Iterable[Path] = ()) -> str:
    """SHA-256 of everything that decides a loop: pixels, mask, motion, options and input files' bytes."""
    digest = hashlib.sha256()
    for array in (image, mask):
        if array is None:
            digest.update(b"none")
        elif isinstance(array, (str, Path)):  # a still sent as its file (inputs.image_input)
            digest.update(b"file")
            digest.update(Path(array).read_bytes())
        else:
            digest.update(f"{array.dtype}{array.shape}".encode())
            digest.update(memoryview(array.tobytes()))
    digest.update(json.dumps({"motion": motion, "options": options}, sort_keys=True, default=str).encode())
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@dataclass
class BatchReport:
    """What a batch did: loops made, reused (resume) and stills that failed with their one-line reason."""

    made: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    """(still, the backend's warning about its loop), e.g. content that travels too far."""

    @property
    def ok(self) -> bool:
        """True when no still failed."""
        return not self.failed

    def summary(self) -> str:
        """One line per outcome, e.g. 'batch: 3 made, 1 reused, 1 failed' + the failures and warnings."""
        lines = [f"batch: {len(self.made)} made, {len(self.reused)} reused (already there), "
                 f"{len(self.failed)} failed"]
        lines += [f"  failed {name}: {reason}" for name, reason in self.failed]
        lines += [f"  warning {name}: {warning}" for name, warning in self.warnings]
        return "\n".join(lines)
