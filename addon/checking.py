"""Check Backend without freezing Blender: a Connect stepped by the runner's timer. Imports bpy.

Thread and process contract: main thread only; ``step()`` is called from the runner's timer (or in a
loop in background mode) and returns within a few milliseconds.
"""
from __future__ import annotations

import time

import bpy

from .core.backend import Connection, describe_hello
from .core.connect import Connect
from .core.lib import load
from .properties import backend_config, preferences

__all__ = ["start", "step", "cancel", "is_checking"]

StillflowError = load("errors").StillflowError

_check: Connect | None = None
_adopts = False


def is_checking() -> bool:
    """True while Check Backend is connecting."""
    return _check is not None


def start(context: bpy.types.Context, connection: Connection, *, busy: bool, wait: bool) -> str:
    """Start checking (finished before returning when ``wait``); the line the preferences show now.

    ``busy``: a job is running, so a connection other than the current one must not replace it.
    """
    global _check, _adopts
    prefs = preferences(context)
    try:
        config = backend_config(context)
    except StillflowError as error:  # refused before any connection attempt (e.g. online access is off)
        prefs.backend_status = f"Cannot connect: {error}"
        return prefs.backend_status
    if _check is not None:
        cancel()
    if busy and not connection.is_ready(config):
        prefs.backend_status = "A job is running on another backend; check again when it ends"
        return prefs.backend_status
    _check, _adopts = connection.begin_check(config)
    prefs.backend_status = _check.label()
    if wait:
        try:
            while _check is not None:
                step(connection)
                time.sleep(0.02)
        except KeyboardInterrupt:
            cancel()
            raise
    return prefs.backend_status


def step(connection: Connection) -> None:
    """One step; the preferences show where it stands, then the answer."""
    connect = _check
    if connect is None:
        return
    connect.step()
    if connect.is_finished:
        _finish(connection, connect)
        return
    preferences().backend_status = connect.label()
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "PREFERENCES":
                area.tag_redraw()


def cancel() -> None:
    """Stop checking (a backend it was starting is stopped)."""
    global _check
    pending, _check = _check, None
    if pending is not None:
        pending.cancel()
        preferences().backend_status = "Check cancelled"


def _finish(connection: Connection, connect: Connect) -> None:
    """Keep a new connection; report the answer or why there is none."""
    global _check
    _check = None
    prefs = preferences()
    if connect.result is None:
        prefs.backend_status = f"Cannot connect: {connect.error}" if connect.error else "Check cancelled"
        return
    hello = connect.result.hello
    if _adopts:
        connection.adopt(connect)
    else:
        connect.result.client.close()
    where = connection.log_path
    prefs.backend_status = describe_hello(hello) + (f"; log: {where}" if where else "")
