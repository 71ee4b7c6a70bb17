"""Compiling the engine's CPU kernels ahead: at setup (``stillflow prepare-engine``) or, said so, on first use.

numba compiles the kernels of stages/cpu_*.py on their first call (about a minute on two cores)
and keeps them in its cache (``cache=True``): beside the modules (``stages/__pycache__``) when that
folder is writable, as in an editable install, else in the user's cache (~/.cache/numba for a
wheel installed by root), or in $NUMBA_CACHE_DIR when set. A render first checks that cache and,
when a kernel is missing, compiles them all on a tiny loop while telling the user, so a slow
first frame is never silent; when all are cached, the same tiny loop loads them into the process
before the first frame (under a second), so the first frame is as fast as the rest. No torch at
import (the CLI imports this module for its parser).
"""
from __future__ import annotations

import argparse
import logging
import threading
import time
from typing import Any

from .progress import Progress, ProgressFn

__all__ = ["MESSAGE", "STAGE", "engine_ready", "prepare_engine", "ensure_engine", "add_parsers"]

log = logging.getLogger(__name__)

MESSAGE = "preparing the engine (first run only)…"
STAGE = "engine"
"""Progress stage reported while the kernels compile (the add-on shows it by name)."""

_lock = threading.Lock()
_checked = False


def _dispatchers() -> list[Any]:
    """The numba kernels Python calls (inlined helpers compile into them); [] without numba."""
    from .stages import cpu_blend, cpu_kernels, cpu_pyramid, cpu_stretch

    if not cpu_kernels.available():
        return []
    from numba.core.dispatcher import Dispatcher

    return [obj for module in (cpu_kernels, cpu_blend, cpu_pyramid, cpu_stretch) for obj in vars(module).values()
            if isinstance(obj, Dispatcher) and obj.targetoptions.get("inline") != "always"]


def engine_ready() -> bool:
    """True when every CPU kernel is in numba's cache for this source and numba version (or needs none)."""
    try:
        # numba's index of a kernel's cached compilations; empty when missing or stale
        return all(kernel._cache._cache_file._load_index() for kernel in _dispatchers())
    except (AttributeError, OSError, EOFError, ValueError) as exc:  # another numba layout: do not guess
        log.debug("cannot read numba's cache index (%s); assuming the kernels are compiled", exc)
        return True


def prepare_engine(progress: ProgressFn | None = None, *, force: bool = False) -> bool:
    """Compile the CPU kernels on a tiny loop unless already cached (True when it compiled); either
    way this process has them loaded afterwards."""
    global _checked
    with _lock:
        if not force and (_checked or engine_ready()):
            loaded, _checked = _checked, True
            if not loaded and _dispatchers():
                # numba loads a cached kernel into the process at its first call (about a second for
                # all of them): done here, before a render's first frame, so that frame is not the
                # slow one the add-on's ETA is paced by (it read 3x the real time left, probe 1.3c).
                _tiny_renders()
            return False
        _checked = True
        log.warning(MESSAGE + " compiling the CPU kernels, about a minute")
        if progress is not None:
            progress(Progress(STAGE, 0, 1))
        started = time.perf_counter()
        _tiny_renders()
        log.info("the engine is prepared (%.0f s); later runs start at once", time.perf_counter() - started)
        if progress is not None:
            progress(Progress(STAGE, 1, 1))
        return True


def ensure_engine(progress: ProgressFn | None = None) -> None:
    """Before a CPU render: prepare the engine (and say so) when its kernels are not compiled yet, and load them."""
    if not _checked:
        prepare_engine(progress)


def _tiny_renders() -> None:
    """Render small loops on the CPU through every path that calls a kernel."""
    import numpy as np

    from .options import MotionSpec, RenderOptions
    from .pipeline import render_frames

    rng = np.random.default_rng(0)
    image = rng.random((64, 64, 3), dtype=np.float32)
    mask = np.zeros((64, 64), np.float32)
    mask[8:56, 8:56] = 1.0
    # A drift, then a field whose speed changes from pixel to pixel: its particles tear (stages/stretch.py).
    # Both travel under a quarter of the width, so the render warns of nothing.
    torn = MotionSpec(kind="field", field=rng.uniform(-2.0, 2.0, (2, 64, 64)).astype(np.float32))
    for motion in (MotionSpec(kind="drift", drift=(0.0, 3.0)), torn):
        for once in (False, True):
            options = RenderOptions(frames=4, levels=2, device="cpu", once=once)
            for _ in render_frames(image, mask=mask, motion=motion, options=options):
                pass


def add_parsers(subparsers: Any) -> None:
    """Add ``stillflow prepare-engine``."""
    parser = subparsers.add_parser("prepare-engine", help="compile the engine's CPU kernels now (setup does this)",
                                   description="Compile the engine's CPU kernels into numba's cache so that the "
                                               "first render starts at full speed. setup.sh runs it.")
    parser.add_argument("--force", action="store_true", help="compile even when the cache looks complete")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    """``stillflow prepare-engine``."""
    if not _dispatchers():
        print("the engine has no compiled kernels here (numba is not installed)")
        return 0
    compiled = prepare_engine(force=args.force)
    print("the engine is prepared" if compiled else "the engine was already prepared")
    return 0
