"""Stillflow extension: register()/unregister() wiring only.

Importing this package does not import bpy (so ``addon.core`` can be tested under plain
Python); Blender calls ``register()`` when the extension is enabled.
"""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)

_log_handler: logging.Handler | None = None


def _classes() -> tuple[type, ...]:
    """Every class to register, in dependency order."""
    from . import install_ops, operators, panels, properties, regions_ui, result_ops

    return (*properties.CLASSES, *operators.CLASSES, *install_ops.CLASSES, *result_ops.CLASSES, *panels.CLASSES,
            *regions_ui.CLASSES)


def register() -> None:
    """Register classes, ``scene.stillflow``, the add-on log file and the live preview."""
    global _log_handler
    import bpy

    from . import file_handlers, placement, preview, properties

    for cls in _classes():
        bpy.utils.register_class(cls)
    bpy.types.Scene.stillflow = bpy.props.PointerProperty(type=properties.STILLFLOW_PG_settings)
    _log_handler = logging.FileHandler(properties.user_folder("logs") / "addon.log", encoding="utf-8")
    _log_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger(__name__).addHandler(_log_handler)
    logging.getLogger(__name__).setLevel(logging.INFO)
    preview.register()
    file_handlers.register()
    placement.register()


def unregister() -> None:
    """Undo register(): stop jobs and the backend, remove the preview, the log file, properties and classes."""
    global _log_handler
    import bpy

    from . import file_handlers, install_ops, placement, preview, runner

    file_handlers.unregister()
    install_ops.shutdown()
    runner.shutdown()
    placement.unregister()
    preview.unregister()
    if _log_handler is not None:
        logging.getLogger(__name__).removeHandler(_log_handler)
        _log_handler.close()
        _log_handler = None
    if hasattr(bpy.types.Scene, "stillflow"):
        del bpy.types.Scene.stillflow
    for cls in reversed(_classes()):
        if cls.is_registered:
            bpy.utils.unregister_class(cls)
