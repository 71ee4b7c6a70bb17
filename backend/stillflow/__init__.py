"""Stillflow: one still photo + mask + motion -> a seamless looping cinemagraph.

Importing this package is cheap: torch and the engine load only when ``render`` or
``render_frames`` is first used, so ``stillflow.link`` (protocol and client) stay
usable where no torch exists (inside Blender). Never imports bpy.
"""
from __future__ import annotations

from typing import Any

from .errors import (BackendUnavailable, Cancelled, InputError, JobFailed, ModelMissing, ProtocolError,
                     StillflowError)
from .options import MotionSpec, Region, RenderOptions, SwaySpec

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "render",
    "render_frames",
    "RenderOptions",
    "MotionSpec",
    "Region",
    "SwaySpec",
    "Progress",
    "RenderResult",
    "StillflowError",
    "InputError",
    "ModelMissing",
    "ProtocolError",
    "BackendUnavailable",
    "JobFailed",
    "Cancelled",
]

_LAZY = {
    "render": ("pipeline", "render"),
    "render_frames": ("pipeline", "render_frames"),
    "Progress": ("progress", "Progress"),
    "RenderResult": ("pipeline", "RenderResult"),
}


def __getattr__(name: str) -> Any:
    """Load engine entry points on first use (keeps `import stillflow` free of torch)."""
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module_name}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'stillflow' has no attribute {name!r}")
