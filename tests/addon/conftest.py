"""Fixtures for the add-on tests: repo paths, the two environments, the built extension, bpy with it installed.

Plain tests import ``addon.core`` from the source tree (it never imports bpy). bpy tests run
in-process under ``.venv-blender`` (``pytest.importorskip("bpy")``) with the extension installed
from the zip that ``scripts/build_extension.py`` builds; the Blender user folder is a temp dir
(``BLENDER_USER_RESOURCES`` is set before bpy is imported).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]
BACKEND_PYTHON = REPO / ".venv" / "bin" / "python"
BPY_PYTHON = REPO / ".venv-blender" / "bin" / "python"
EXTENSION_MODULE = "bl_ext.user_default.stillflow"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
if "bpy" not in sys.modules:
    os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="stillflow_blender_user_")


@pytest.fixture(scope="session", autouse=True)
def blender_user_folder() -> Iterator[None]:
    """Remove the Blender user folder made above (extensions, add-on logs) when the session ends."""
    yield
    if os.path.basename(os.environ.get("BLENDER_USER_RESOURCES", "")).startswith("stillflow_blender_user_"):
        shutil.rmtree(os.environ["BLENDER_USER_RESOURCES"], ignore_errors=True)


@pytest.fixture(scope="session")
def backend_python() -> str:
    """Interpreter of the backend environment (skips when it or the service is missing)."""
    if not BACKEND_PYTHON.is_file():
        pytest.skip("backend environment .venv is not set up")
    return str(BACKEND_PYTHON)


@pytest.fixture(scope="session")
def extension_zips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The per-platform zips built by scripts/build_extension.py into a temp folder."""
    if not BPY_PYTHON.is_file():
        pytest.skip("bpy environment .venv-blender is not set up")
    root = tmp_path_factory.mktemp("extension")
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "build_extension.py"), "--out", str(root / "dist"),
                           "--stage", str(root / "stage")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    zips = {path.stem.rsplit("-", 1)[1]: path for path in (root / "dist").glob("*.zip")}
    zips["stage"] = root / "stage"
    return zips


@pytest.fixture(scope="session")
def sf(extension_zips: dict[str, Path]) -> Iterator[ModuleType]:
    """The Stillflow extension installed from the linux zip into real bpy and enabled."""
    bpy = pytest.importorskip("bpy")
    result = bpy.ops.extensions.package_install_files(filepath=str(extension_zips["linux_x64"]),
                                                       repo="user_default", enable_on_install=True)
    assert result == {"FINISHED"}
    module = sys.modules[EXTENSION_MODULE]
    yield module
    module.runner.shutdown()


@pytest.fixture()
def scene(sf: ModuleType) -> Iterator[object]:
    """A fresh scene (made the window's scene) with default Stillflow settings; removed afterwards."""
    import bpy

    window = bpy.context.window_manager.windows[0]
    previous = window.scene
    new = bpy.data.scenes.new("stillflow test")
    window.scene = new
    yield new
    window.scene = previous
    bpy.data.scenes.remove(new)
