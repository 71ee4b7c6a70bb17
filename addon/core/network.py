"""Whether a backend endpoint needs Blender's online access (``bpy.app.online_access``).

No ``bpy`` module use. Blender's extension rules: an add-on may talk to this computer (loopback,
IPC) freely; anything else needs the user's "Allow Online Access" (blender5.md §2.4).
"""
from __future__ import annotations

import ipaddress
import re

from .lib import load

__all__ = ["is_loopback", "check_online_access"]

_errors = load("errors")

_TCP = re.compile(r"^tcp://(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:/]+))(?::(?P<port>[^/]*))?$")


def is_loopback(endpoint: str) -> bool:
    """True for an endpoint on this computer (ipc://, inproc://, tcp:// to localhost or a loopback address)."""
    endpoint = endpoint.strip()
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    match = _TCP.match(endpoint)
    if match is None:
        return False
    host = (match.group("v6") or match.group("host") or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_online_access(endpoint: str, *, online_access: bool, forced_offline: bool = False) -> None:
    """Raise BackendUnavailable when ``endpoint`` is on another computer and online access is off.

    ``forced_offline`` = Blender was started with ``--offline-mode`` (``bpy.app.online_access_override``).
    """
    if online_access or is_loopback(endpoint):
        return
    if forced_offline:
        raise _errors.BackendUnavailable(
            f"Blender was started in offline mode, so the add-on may not connect to {endpoint}",
            hint="restart Blender without --offline-mode, or use a backend on this computer")
    raise _errors.BackendUnavailable(
        f"online access is off in Blender, so the add-on may not connect to {endpoint}",
        hint="turn on Preferences > System > Network > Allow Online Access, or use a backend on this computer")
