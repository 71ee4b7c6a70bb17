"""Progress reports and cancellation hooks shared by the engine, the service and the CLI.

No torch, no bpy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["Progress", "ProgressFn", "CancelFn"]


@dataclass(frozen=True, slots=True)
class Progress:
    """One progress report: ``done`` of ``total`` units of ``stage`` are finished.

    ``frame`` is the frame just rendered, (H, W, C) float32 in [0, 1], when the stage
    renders frames (the service turns it into a small preview); otherwise None.
    """

    stage: str
    done: int
    total: int
    frame: np.ndarray | None = None


ProgressFn = Callable[[Progress], None]
CancelFn = Callable[[], bool]
