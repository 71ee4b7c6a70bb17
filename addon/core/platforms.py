"""Which Blender platform this computer is, in the two spellings Blender uses. Standard library only.

No ``bpy`` module use; ``scripts/build_backend_bundle.py`` imports it too.
"""
from __future__ import annotations

import platform
import sys

__all__ = ["this_platform", "file_name", "PYTHON_VERSION"]

PYTHON_VERSION = "3.11"
"""Blender 4.2-5.0 run Python 3.11; the backend bundle is built for it."""

_MACHINES = {"x86_64": "x64", "amd64": "x64", "arm64": "arm64", "aarch64": "arm64"}


def this_platform() -> str:
    """The manifest's name of this computer's platform: 'linux-x64', 'windows-x64', 'macos-arm64', …"""
    system = {"linux": "linux", "win32": "windows", "darwin": "macos"}.get(sys.platform, sys.platform)
    return f"{system}-{_MACHINES.get(platform.machine().lower(), platform.machine().lower())}"


def file_name(name: str) -> str:
    """A platform's name as zip file names spell it ('linux-x64' -> 'linux_x64')."""
    return name.replace("-", "_")
