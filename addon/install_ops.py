"""Install Backend, Update, Repair, Remove and Cancel: operators and the install's timer. Imports bpy.

Thread and process contract:
  - Everything here runs on Blender's main thread. The install itself runs in child processes
    (``core.installer``); ``_timer`` only polls them and copies the progress into the preferences
    and the status bar (a few milliseconds per tick).
  - Without timers (``blender -b``, scripts) the operators wait for the install (``Installer.run``);
    tests set ``WAIT_IN_BACKGROUND = False`` and call ``_timer`` themselves.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import bpy
from bpy.props import EnumProperty

from . import runner
from .core import install_env
from .core.install_env import BackendHome
from .core.installer import Installer, InstallPlan, remove_later
from .core.lib import ADDON_DIR, load
from .properties import backend_home, preferences

log = logging.getLogger(__name__)

__all__ = ["CLASSES", "active_installer", "plan", "WAIT_IN_BACKGROUND", "TICK_S"]

_errors = load("errors")

WAIT_IN_BACKGROUND = True
"""In background mode (no timers fire) the operators wait for the install; tests set False and tick ``_timer``."""

TICK_S = 0.1

_installer: Installer | None = None


def active_installer() -> Installer | None:
    """The install in progress (None when none runs)."""
    return _installer if _installer is not None and not _installer.is_finished else None


def plan(prefs: bpy.types.AddonPreferences, home: BackendHome, *, update: bool) -> InstallPlan:
    """What the preferences ask to install, and from where.

    Raises:
        InputError: online access is off for an online install, the bundle is missing or wrong, or
            this add-on carries no backend wheel; one line each.
    """
    wheel = install_env.bundled_wheel(ADDON_DIR)
    if wheel is None:
        raise _errors.InputError("this add-on carries no backend wheel (it was not installed from a zip made by "
                                 "scripts/build_extension.py); set the Backend Python of an existing environment")
    if prefs.install_source == "BUNDLE":
        chosen = prefs.install_bundle.strip()
        if not chosen:
            raise _errors.InputError("no backend bundle chosen; pick a stillflow-backend-<platform>.zip "
                                     "(or a folder of wheels) under Install From")
        try:
            bundle = install_env.read_bundle(Path(bpy.path.abspath(chosen)))
        except ValueError as error:
            raise _errors.InputError(str(error)) from None
        return InstallPlan(home, wheel, bundle=bundle, update=update)
    if not bpy.app.online_access:
        raise _errors.InputError("online access is off in Blender, so Install Backend may not download; turn on "
                                 "Preferences > System > Network > Allow Online Access, or install from an "
                                 "offline backend bundle")
    url = prefs.install_index_url.strip() if prefs.install_source == "EXTRA_INDEX" else ""
    if prefs.install_source == "EXTRA_INDEX" and not url:
        raise _errors.InputError("no extra index URL given; enter one (e.g. a PyTorch index for your CUDA "
                                 "version) or choose Package Index")
    return InstallPlan(home, wheel, index_url=url, update=update)


def _redraw() -> None:
    """Redraw the preferences and the Image Editors so the install's bar moves."""
    window_manager = bpy.context.window_manager
    for window in window_manager.windows if window_manager is not None else ():
        for area in window.screen.areas:
            if area.type in ("PREFERENCES", "IMAGE_EDITOR"):
                area.tag_redraw()


def _status_bar(text: str | None) -> None:
    """Show ``text`` in the status bar (None clears it)."""
    for workspace in bpy.data.workspaces:
        workspace.status_text_set(text)


def _show(installer: Installer) -> None:
    """Copy the install's progress (or its end) into the preferences and the status bar."""
    prefs = preferences()
    if installer.is_finished:
        prefs.install_progress = 1.0 if installer.state == "done" else 0.0
        prefs.install_status = installer.message if installer.state != "failed" else f"Error: {installer.message}"
        _status_bar(None)
    else:
        words = {"cancelled": "cancelling, removing the half-made environment",
                 "failed": "failed, removing the half-made environment"}.get(installer.ending, installer.progress.label)
        text = f"Stillflow backend: {words}"
        prefs.install_progress, prefs.install_status = installer.progress.fraction, text
        _status_bar(text)
    _redraw()


def _finish(installer: Installer) -> None:
    """After a finished install: show how it ended; a new backend is started by the next Generate."""
    _show(installer)
    if installer.state == "done" and runner.active_tracker() is None:
        runner.CONNECTION.close()


def _timer() -> float | None:
    """Timer body: step the install; stops when it is over (outermost layer: logs the unexpected)."""
    installer = _installer
    if installer is None:
        return None
    try:
        if installer.step():
            _show(installer)
            return TICK_S
        _finish(installer)
    except Exception:
        log.exception("the Stillflow install timer failed")
        installer.cancel()
        _status_bar(None)
    return None


class STILLFLOW_OT_install_backend(bpy.types.Operator):
    """Make a private Python environment with the Stillflow backend (torch included) for this add-on"""

    bl_idname = "stillflow.install_backend"
    bl_label = "Install Backend"

    action: EnumProperty(
        name="Action", default="INSTALL", options={"SKIP_SAVE"},
        items=(("INSTALL", "Install", "Make a new environment and install the backend into it"),
               ("UPDATE", "Update", "Install this add-on's backend version, keeping torch when it still fits"),
               ("REPAIR", "Repair", "Make the environment anew (the working one is kept until the new one works)")))

    @classmethod
    def description(cls, context: bpy.types.Context, properties: bpy.types.OperatorProperties) -> str:
        """The hover text of each action."""
        return {"UPDATE": "Install this add-on's backend version into a copy of the environment, keeping torch "
                          "when its version still fits",
                "REPAIR": "Make the backend environment anew; the working one stays until the new one works"
                }.get(properties.action, cls.__doc__)

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if active_installer() is not None:
            cls.poll_message_set("The backend is being installed (Cancel stops it)")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        global _installer
        prefs = preferences(context)
        try:
            installer = Installer(plan(prefs, backend_home(), update=self.action == "UPDATE"))
            installer.start()
        except (_errors.StillflowError, OSError) as error:
            prefs.install_status = f"Error: {error}"
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        _installer = installer
        if not (bpy.app.background and WAIT_IN_BACKGROUND):
            _show(installer)
            bpy.app.timers.register(_timer, first_interval=TICK_S, persistent=True)
            return {"FINISHED"}
        try:
            installer.run()
        finally:
            _finish(installer)
        if installer.state != "done":
            self.report({"ERROR"}, installer.message)
            return {"CANCELLED"}
        self.report({"INFO"}, installer.message)
        return {"FINISHED"}


class STILLFLOW_OT_cancel_install(bpy.types.Operator):
    """Stop installing the backend; the half-made environment is removed and a working one is kept"""

    bl_idname = "stillflow.cancel_install"
    bl_label = "Cancel Install"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if active_installer() is None:
            cls.poll_message_set("No backend install is running")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        installer = active_installer()
        if installer is not None:
            installer.cancel()
            _show(installer)
        return {"FINISHED"}


class STILLFLOW_OT_remove_backend(bpy.types.Operator):
    """Remove the backend environment Install Backend made (an environment set as Backend Python stays)"""

    bl_idname = "stillflow.remove_backend"
    bl_label = "Remove Backend"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if active_installer() is not None or runner.active_tracker() is not None:
            cls.poll_message_set("Wait for the running install or job to end")
            return False
        if backend_home().current() is None:
            cls.poll_message_set("No backend is installed")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        home = backend_home()
        runner.CONNECTION.close()
        installed = home.forget()
        folders = [p if p.name.startswith(".trash-") else home.trash(p) for p in home.leftovers()]
        remover = remove_later(sys.executable, folders)
        if bpy.app.background and WAIT_IN_BACKGROUND:
            remover.wait()
        preferences(context).install_status = f"Removed the backend {installed.version if installed else ''}".strip()
        self.report({"INFO"}, preferences(context).install_status)
        return {"FINISHED"}


def shutdown() -> None:
    """Unregister: stop following an install (its processes go on only to clean up after a Cancel)."""
    global _installer
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)
    if _installer is not None and not _installer.is_finished:
        _installer.cancel()
    _installer = None


CLASSES = (STILLFLOW_OT_install_backend, STILLFLOW_OT_cancel_install, STILLFLOW_OT_remove_backend)
