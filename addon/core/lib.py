"""Access to the torch-free part of the ``stillflow`` package (client, protocol, options, hints).

No ``bpy`` module use. The extension zip carries these backend modules in ``_vendor/stillflow/``
(``scripts/build_extension.py`` copies them; git holds no second copy). When the add-on runs from
a source checkout instead (``addon/`` next to ``backend/`` and ``blender_manifest.toml``), the same
files are loaded from ``backend/stillflow/``. Either way the package is imported under the private
name ``<addon package>._vendor.stillflow`` so it never clashes with a ``stillflow`` installed in
Blender's own Python.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType

log = logging.getLogger(__name__)

__all__ = ["stillflow", "load", "ADDON_DIR"]

ADDON_DIR = Path(__file__).resolve().parents[1]
"""Folder of the add-on package (the extension's root inside the zip)."""

_ADDON_PACKAGE = __package__.rpartition(".")[0] if __package__ else "stillflow_addon"
_PRIVATE_NAME = f"{_ADDON_PACKAGE}._vendor.stillflow"


def _package_dir() -> Path:
    """Folder holding the stillflow package files: bundled first, then the source checkout."""
    bundled = ADDON_DIR / "_vendor" / "stillflow"
    if (bundled / "__init__.py").is_file():
        return bundled
    checkout = ADDON_DIR.parent
    source = checkout / "backend" / "stillflow"
    if (checkout / "blender_manifest.toml").is_file() and (source / "__init__.py").is_file():
        return source
    raise ImportError(f"the stillflow client modules are missing from {ADDON_DIR}; "
                      "reinstall the extension from a zip made by scripts/build_extension.py")


def stillflow() -> ModuleType:
    """The stillflow package, imported once under the add-on's private name."""
    module = sys.modules.get(_PRIVATE_NAME)
    if module is not None:
        return module
    package_dir = _package_dir()
    spec = importlib.util.spec_from_file_location(
        _PRIVATE_NAME, package_dir / "__init__.py", submodule_search_locations=[str(package_dir)])
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the stillflow package from {package_dir}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_PRIVATE_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[_PRIVATE_NAME]
        raise
    log.debug("stillflow client modules loaded from %s", package_dir)
    return module


def load(name: str) -> ModuleType:
    """A submodule of the private stillflow package, e.g. ``load("link.client")`` or ``load("stages.hints")``."""
    stillflow()
    return importlib.import_module(f"{_PRIVATE_NAME}.{name}")
