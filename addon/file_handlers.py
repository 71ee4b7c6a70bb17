"""What happens to a running job when another .blend is loaded (File > New / Open / Revert). Imports bpy.

``load_pre`` cancels the job cleanly on the backend before the file it belongs to goes away (its
scene, still and result Image would no longer exist); ``load_post`` clears a running status that
the new file may have been saved with. Both are persistent handlers, so they survive the load.
"""
from __future__ import annotations

import logging

import bpy
from bpy.app.handlers import persistent

from . import runner

log = logging.getLogger(__name__)

__all__ = ["register", "unregister"]

_RUNNING_PREFIXES = ("Stillflow:", "Queued", "Cancelling")


@persistent
def on_load_pre(*_args: object) -> None:
    """Cancel what runs: the job belongs to the file being closed."""
    if runner.active_tracker() is not None:
        runner.abandon("another file was loaded")


@persistent
def on_load_post(*_args: object) -> None:
    """No scene of the new file may look busy: nothing of it runs."""
    for scene in bpy.data.scenes:
        settings = getattr(scene, "stillflow", None)
        if settings is None:
            continue
        settings.is_running = False
        if settings.status.startswith(_RUNNING_PREFIXES):
            settings.status = ""


def register() -> None:
    """Add the handlers once."""
    for handlers, handler in ((bpy.app.handlers.load_pre, on_load_pre), (bpy.app.handlers.load_post, on_load_post)):
        if handler not in handlers:
            handlers.append(handler)


def unregister() -> None:
    """Remove the handlers."""
    for handlers, handler in ((bpy.app.handlers.load_pre, on_load_pre), (bpy.app.handlers.load_post, on_load_post)):
        while handler in handlers:
            handlers.remove(handler)
