"""The backend environment's part of the preferences, and the panel's offer to install or update (draw only).

Imports bpy. What to offer is decided by ``offer()`` (testable headless, since panels never draw there).
"""
from __future__ import annotations

import bpy

from . import install_ops
from .core import install_env
from .core.lib import stillflow
from .properties import backend_home, preferences

__all__ = ["offer", "draw_preferences", "draw_offer"]


def offer(context: bpy.types.Context | None = None) -> tuple[str, str] | None:
    """(action, one line) when the artist should install or update the backend, else None.

    'INSTALL' when Start Locally has no Backend Python set and no private environment exists;
    'UPDATE' when the private environment holds another version than this add-on.
    """
    prefs = preferences(context)
    if prefs.backend_mode != "LOCAL" or prefs.python_path.strip() or install_ops.active_installer() is not None:
        return None
    installed = backend_home().current()
    if installed is None:
        return ("INSTALL", "No Stillflow backend is installed yet: Install Backend makes one for this add-on")
    problem = install_env.version_problem(installed.version, stillflow().__version__)
    return ("UPDATE", problem[0].upper() + problem[1:]) if problem else None


def _draw_progress(layout: bpy.types.UILayout, prefs: bpy.types.AddonPreferences) -> bool:
    """The install's bar and Cancel while one runs; True when drawn."""
    if install_ops.active_installer() is None:
        return False
    row = layout.row(align=True)
    row.progress(factor=prefs.install_progress, type="BAR", text=prefs.install_status or "Installing")
    row.operator("stillflow.cancel_install", text="", icon="CANCEL")
    return True


def draw_offer(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    """In the panel: the install's progress, or Install / Update Backend when Generate needs it."""
    prefs = preferences(context)
    if _draw_progress(layout, prefs):
        return
    found = offer(context)
    if found is None:
        return
    action, line = found
    box = layout.box()
    box.label(text=line, icon="ERROR" if action == "UPDATE" else "INFO")
    text = "Update Backend" if action == "UPDATE" else "Install Backend"
    box.operator("stillflow.install_backend", text=text, icon="IMPORT").action = action


def draw_preferences(layout: bpy.types.UILayout, prefs: bpy.types.AddonPreferences) -> None:
    """The Backend Environment box of the preferences: state, source, Install / Update / Repair / Remove."""
    box = layout.box()
    box.label(text="Backend Environment", icon="PACKAGE")
    installed = backend_home().current()
    if installed is not None:
        box.label(text=f"Installed: stillflow {installed.version} in {installed.env_dir}")
    else:
        box.label(text="Not installed: Install Backend makes a private environment for this add-on")
    if not _draw_progress(box, prefs):
        box.prop(prefs, "install_source")
        if prefs.install_source == "BUNDLE":
            box.prop(prefs, "install_bundle")
        elif prefs.install_source == "EXTRA_INDEX":
            box.prop(prefs, "install_index_url")
        if prefs.install_source != "BUNDLE" and not bpy.app.online_access:
            box.label(text="Online access is off (Preferences > System > Network); use an offline bundle",
                      icon="ERROR")
        row = box.row()
        if installed is None:
            row.operator("stillflow.install_backend", icon="IMPORT").action = "INSTALL"
        else:
            row.operator("stillflow.install_backend", text="Update Backend", icon="FILE_REFRESH").action = "UPDATE"
            row.operator("stillflow.install_backend", text="Repair Backend", icon="TOOL_SETTINGS").action = "REPAIR"
            row.operator("stillflow.remove_backend", icon="TRASH")
    if prefs.install_status and install_ops.active_installer() is None:
        box.label(text=prefs.install_status, icon="ERROR" if prefs.install_status.startswith("Error") else "INFO")
    box.label(text=f"Install log: {backend_home().log_path}")
