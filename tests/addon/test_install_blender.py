"""From the extension zip to a rendered loop with no terminal (issue 23), in real bpy 5.0.1.

The extension is installed from its zip; Install Backend makes the private environment under the
extension's user folder from an offline bundle (scripts/build_backend_bundle.py, built from the
package index once per session, with the backend environment's torch build pinned), with
Blender's interpreter (here .venv-blender's). One real install serves every test; the others
cancel, fail or update against it.
"""
from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import pytest

bpy = pytest.importorskip("bpy")

from tests.addon.blender_scenes import region_mask, saved_still  # noqa: E402

pytestmark = [pytest.mark.blender, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
TICK_BUDGET_S = 0.25
"""Generous bound for one timer tick on a loaded 2-core machine; bench/bench_install.py reports the real figure."""
OPERATOR_BUDGET_S = 1.0
INSTALL_LIMIT_S = 900.0


@pytest.fixture(scope="session")
def bundle(backend_python: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dist/stillflow-backend-<this platform>.zip, with the backend environment's torch build pinned."""
    torch = subprocess.run([backend_python, "-c", "import torch; print(torch.__version__)"], capture_output=True,
                           text=True, check=True).stdout.strip()
    out = tmp_path_factory.mktemp("bundle")
    done = subprocess.run([backend_python, str(REPO / "scripts" / "build_backend_bundle.py"), "--out", str(out),
                           "--torch", f"torch=={torch}"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip())


@pytest.fixture()
def prefs(sf: ModuleType, tmp_path: Path) -> Iterator[Any]:
    """Start Locally with nothing configured (no Backend Python), results under tmp_path; restored afterwards."""
    prefs = bpy.context.preferences.addons[sf.__name__].preferences
    names = ("backend_mode", "python_path", "output_dir", "install_source", "install_bundle", "install_index_url")
    saved = {name: getattr(prefs, name) for name in names}
    prefs.backend_mode, prefs.python_path, prefs.output_dir = "LOCAL", "", str(tmp_path / "out")
    yield prefs
    sf.runner.abandon("test over")
    sf.runner.CONNECTION.close()
    sf.install_ops.WAIT_IN_BACKGROUND = True
    for name, value in saved.items():
        setattr(prefs, name, value)


def _install(prefs: Any, source: Path, action: str = "INSTALL") -> None:
    """Install Backend from an offline bundle, in its blocking mode (background Blender)."""
    prefs.install_source, prefs.install_bundle = "BUNDLE", str(source)
    assert bpy.ops.stillflow.install_backend(action=action) == {"FINISHED"}


@pytest.fixture()
def installed(sf: ModuleType, bundle: Path, prefs: Any) -> Any:
    """The live private environment (installed once per session)."""
    home = sf.properties.backend_home()
    if home.current() is None:
        _install(prefs, bundle)
    return home.current()


def _job(scene: Any, folder: Path) -> None:
    """A saved gradient still and a Mask with a region and an arrow; a tiny CPU job."""
    import numpy as np

    yy, xx = np.mgrid[0:32, 0:48].astype(np.float32)
    rgba = np.stack([xx / 48, yy / 32, 0.5 + 0.4 * np.sin(xx / 4.0), np.ones_like(xx)], axis=-1)
    settings = scene.stillflow
    settings.image = saved_still(folder, "gradient", rgba)
    settings.mask = region_mask("centre", [(0.25, 0.3), (0.75, 0.3), (0.75, 0.7), (0.25, 0.7)], ((0.3, 0.5), (0.7, 0.45)))
    settings.frames, settings.levels, settings.device = 4, 2, "cpu"


def _folders(home: Any) -> list[Path]:
    """The environments under envs/ (older ones renamed .trash-* are being removed in the background)."""
    return sorted(p for p in home.envs.iterdir() if not p.name.startswith(".trash-"))


def _works(python: Path) -> str:
    """The stillflow version an environment's interpreter imports (from a neutral folder)."""
    return subprocess.run([str(python), "-c", "import stillflow; print(stillflow.__version__)"], capture_output=True,
                          text=True, cwd=python.anchor, check=True).stdout.strip()


class TestFirstRun:
    def test_zip_carries_the_backend_as_data(self, extension_zips: dict[str, Path]) -> None:
        import tomllib

        for platform in ("linux_x64", "windows_x64", "macos_arm64"):
            archive = zipfile.ZipFile(extension_zips[platform])
            assert "backend/stillflow-0.1.0-py3-none-any.whl" in archive.namelist()
            manifest = tomllib.loads(archive.read("blender_manifest.toml").decode())
            assert not any("stillflow-" in wheel for wheel in manifest["wheels"])  # Blender would unpack it

    def test_generate_offers_install_then_renders(self, sf: ModuleType, bundle: Path, prefs: Any, scene: Any,
                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        home = sf.properties.backend_home()
        home.forget()  # a fresh user: no private environment (only when another test installed first)
        monkeypatch.setenv("PATH", str(tmp_path))  # no python3 or stillflow command of this machine's to find
        monkeypatch.delenv("STILLFLOW_PYTHON", raising=False)
        _job(scene, tmp_path)
        assert sf.install_ui.offer()[0] == "INSTALL"
        with pytest.raises(RuntimeError, match="no Python with the stillflow backend was found.*Install Backend"):
            bpy.ops.stillflow.generate()
        started = time.monotonic()
        _install(prefs, bundle)
        print(f"\n[install] offline install: {time.monotonic() - started:.0f} s")
        installed = home.current()
        user_folder = Path(bpy.utils.extension_path_user(sf.__name__))
        assert installed is not None and installed.env_dir.is_relative_to(user_folder)
        assert installed.version == sf.core.lib.stillflow().__version__ == _works(installed.python)
        assert sf.install_ui.offer() is None and prefs.python_path == ""
        assert prefs.install_status.startswith("Stillflow backend 0.1.0 installed from the offline bundle")
        assert bpy.ops.stillflow.generate() == {"FINISHED"}
        assert scene.stillflow.result is not None and scene.stillflow.result_frames == 4
        assert sf.runner.CONNECTION.backend.process.args[0] == str(installed.python)

    def test_online_needs_online_access(self, sf: ModuleType, prefs: Any) -> None:
        assert not bpy.app.online_access
        for source in ("INDEX", "EXTRA_INDEX"):
            prefs.install_source, prefs.install_index_url = source, "https://example.invalid/simple"
            with pytest.raises(RuntimeError, match="online access is off in Blender, so Install Backend may not "
                                                   "download; turn on Preferences > System > Network"):
                bpy.ops.stillflow.install_backend()


class TestOnline:
    def test_install_from_the_package_index(self, sf: ModuleType, installed: Any, prefs: Any, backend_python: str,
                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Install From: Package Index, as an artist with online access would (pip resolves pyproject's list)."""
        torch = subprocess.run([backend_python, "-c", "import torch; print(torch.__version__)"], capture_output=True,
                               text=True, check=True).stdout.strip()
        (tmp_path / "constraint.txt").write_text(f"torch=={torch}\n")  # the CPU build, as in the backend env
        monkeypatch.setenv("PIP_CONSTRAINT", str(tmp_path / "constraint.txt"))
        monkeypatch.setenv("PIP_CACHE_DIR", str(tmp_path / "pip-cache"))
        home = sf.properties.backend_home()
        system = bpy.context.preferences.system
        system.use_online_access = True
        try:
            prefs.install_source = "INDEX"
            assert bpy.ops.stillflow.install_backend(action="REPAIR") == {"FINISHED"}
        finally:
            system.use_online_access = False
        online = home.current()
        assert online.env_dir != installed.env_dir and _works(online.python) == "0.1.0"
        log = home.log_path.read_text()
        assert "from the package index into" in log and "--no-index" not in log
        assert prefs.install_status.startswith("Stillflow backend 0.1.0 installed from the package index")


class TestCancelAndFailures:
    def test_cancel_removes_the_half_env_keeps_the_live_one_never_blocks(self, sf: ModuleType, installed: Any,
                                                                         bundle: Path, prefs: Any) -> None:
        home = sf.properties.backend_home()
        sf.install_ops.WAIT_IN_BACKGROUND = False
        prefs.install_source, prefs.install_bundle = "BUNDLE", str(bundle)
        started = time.perf_counter()
        assert bpy.ops.stillflow.install_backend(action="REPAIR") == {"FINISHED"}
        assert time.perf_counter() - started < OPERATOR_BUDGET_S
        installer = sf.install_ops.active_installer()
        half = installer.env_dir
        ticks: list[float] = []
        deadline = time.monotonic() + INSTALL_LIMIT_S
        while not (installer.progress.phase == "pip" and len(installer.progress.seen) >= 3):
            assert time.monotonic() < deadline and not installer.is_finished, installer.message
            before = time.perf_counter()
            assert sf.install_ops._timer() is not None
            ticks.append(time.perf_counter() - before)
            time.sleep(0.05)
        assert half.is_dir() and prefs.install_status.startswith("Stillflow backend: installing")
        assert bpy.ops.stillflow.cancel_install() == {"FINISHED"}
        assert prefs.install_status == "Stillflow backend: cancelling, removing the half-made environment"
        while True:
            before = time.perf_counter()
            delay = sf.install_ops._timer()
            ticks.append(time.perf_counter() - before)
            if delay is None:
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        print(f"\n[install] {len(ticks)} ticks, longest {max(ticks) * 1000:.1f} ms")
        assert installer.state == "cancelled" and max(ticks) < TICK_BUDGET_S
        assert prefs.install_status == "Install Backend was cancelled; the previous backend is kept"
        assert not half.exists() and not any(home.envs.glob(f".trash-{half.name}-*"))
        assert _folders(home) == [installed.env_dir]
        assert home.current() == installed and _works(installed.python) == installed.version

    def test_bad_bundle_names_what_is_missing(self, sf: ModuleType, installed: Any, bundle: Path, prefs: Any,
                                              tmp_path: Path) -> None:
        home = sf.properties.backend_home()
        folder = tmp_path / "wheels"
        with zipfile.ZipFile(bundle) as archive:
            for name in archive.namelist():
                if name.endswith(".whl") and not name.startswith("torch-"):
                    archive.extract(name, folder)
        with pytest.raises(RuntimeError) as raised:
            _install(prefs, folder, action="REPAIR")
        line = str(raised.value).strip().removeprefix("Error: ")
        assert "\n" not in line
        assert "the backend bundle has no torch" in line and f"install log: {home.log_path}" in line
        assert prefs.install_status == f"Error: {line}"
        assert home.current() == installed and _folders(home) == [installed.env_dir]

    def test_no_network_one_line(self, sf: ModuleType, installed: Any, prefs: Any,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
        import socket

        with socket.socket() as probe:  # a loopback port nobody listens on stands for an unreachable index
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        for name in [name for name in os.environ if name.startswith("PIP_")]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
        monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{port}/simple")
        system = bpy.context.preferences.system
        system.use_online_access = True
        try:
            prefs.install_source = "INDEX"
            with pytest.raises(RuntimeError, match=r"no network: pip could not reach the package index; .*"
                                                   r"install log: .*install\.log$"):
                bpy.ops.stillflow.install_backend(action="REPAIR")
        finally:
            system.use_online_access = False
        home = sf.properties.backend_home()
        assert home.current() == installed and _folders(home) == [installed.env_dir]

    def test_not_enough_space_says_how_much(self, sf: ModuleType, installed: Any, prefs: Any, tmp_path: Path) -> None:
        # a folder of wheels is estimated at 3x its size: one sparse file as large as the free space is enough
        folder = tmp_path / "wheels"
        folder.mkdir()
        with open(folder / "huge-1.0-py3-none-any.whl", "wb") as stream:
            stream.truncate(shutil.disk_usage(tmp_path).free)
        with pytest.raises(RuntimeError, match=r"not enough disk space for the backend: it needs about [\d.]+ GB in "
                                                r".*, [\d.]+ GB are free"):
            _install(prefs, folder, action="REPAIR")
        assert sf.properties.backend_home().current() == installed


class TestVersions:
    def test_older_backend_is_named_and_update_fixes_it(self, sf: ModuleType, installed: Any, bundle: Path,
                                                        prefs: Any, tmp_path: Path) -> None:
        sys.path.insert(0, str(REPO / "scripts"))
        from backend_wheel import build_wheel

        source = tmp_path / "old"
        source.mkdir()
        shutil.copy(REPO / "pyproject.toml", source / "pyproject.toml")
        shutil.copytree(REPO / "backend", source / "backend", ignore=shutil.ignore_patterns("__pycache__"))
        for path, old, new in ((source / "pyproject.toml", 'version = "0.1.0"', 'version = "0.0.9"'),
                               (source / "backend" / "stillflow" / "__init__.py", '__version__ = "0.1.0"',
                                '__version__ = "0.0.9"')):
            path.write_text(path.read_text().replace(old, new, 1))
        old_wheel = build_wheel(tmp_path / "dist", repo=source)
        home = sf.properties.backend_home()
        older = home.new_env_dir()
        worker = importlib.import_module(f"{sf.__name__}.core.install_worker")
        shutil.copytree(installed.env_dir, older, symlinks=True, copy_function=worker.link_or_copy)
        subprocess.run([str(sf.core.install_env.env_python(older)), "-m", "pip", "install", "--no-deps", "--no-index",
                        "--isolated", "--force-reinstall", "--disable-pip-version-check", "-q", str(old_wheel)],
                       check=True, env={**os.environ, "PIP_CONFIG_FILE": os.devnull})
        home.commit(older, "0.0.9")
        action, line = sf.install_ui.offer()
        assert action == "UPDATE" and line.startswith("The Stillflow backend (0.0.9) is older than the add-on (0.1.0)")
        # the running backend says so too (its hello), whatever the record says
        with pytest.raises(RuntimeError, match=r"the Stillflow backend \(0.0.9\) is older than the add-on \(0.1.0\); "
                                               "press Update Backend"):
            bpy.ops.stillflow.check_backend()
        _install(prefs, bundle, action="UPDATE")
        updated = home.current()
        assert updated.version == "0.1.0" == _works(updated.python) and sf.install_ui.offer() is None
        assert not older.exists() and _folders(home) == [updated.env_dir]
        deadline = time.monotonic() + INSTALL_LIMIT_S
        while any(home.envs.glob(".trash-*")):  # the older environments' removal ends by itself
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert bpy.ops.stillflow.check_backend() == {"FINISHED"}
        assert "Stillflow backend 0.1.0" in prefs.backend_status
