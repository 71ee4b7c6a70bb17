"""Install Backend's bpy-free parts: the backend wheel, bundles, versions, disk space, the log's progress and failures.

Runs under any of the two environments (no bpy). The whole install in real bpy is in test_install_blender.py.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from addon.core import install_env, platforms  # noqa: E402
from addon.core.install_env import BackendHome  # noqa: E402
from addon.core.install_progress import InstallProgress, failure_line  # noqa: E402
from backend_wheel import build_wheel  # noqa: E402

HERE = platforms.file_name(platforms.this_platform())


class TestBackendWheel:
    def test_installs_and_imports(self, tmp_path: Path) -> None:
        wheel = build_wheel(tmp_path / "dist")
        assert wheel.name == "stillflow-0.1.0-py3-none-any.whl"
        target = tmp_path / "site"
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--isolated",
                               "--disable-pip-version-check", "--target", str(target), str(wheel)],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        code = "import stillflow, stillflow.link.protocol; print(stillflow.__version__, stillflow.__file__)"
        shown = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {code}"],
                               capture_output=True, text=True, cwd=tmp_path)
        assert shown.stdout.split() == ["0.1.0", str(target / "stillflow" / "__init__.py")], shown.stderr
        metadata = zipfile.ZipFile(wheel).read("stillflow-0.1.0.dist-info/METADATA").decode()
        assert "Requires-Dist: torch>=2.4,<3" in metadata and 'Requires-Dist: ray>=2.9; extra == "ray"' in metadata

    def test_same_checkout_same_bytes(self, tmp_path: Path) -> None:
        first = build_wheel(tmp_path / "a").read_bytes()
        assert build_wheel(tmp_path / "b").read_bytes() == first


class TestVersions:
    @pytest.mark.parametrize(("a", "b", "order"), [("0.1.0", "0.1.0", 0), ("0.0.9", "0.1.0", -1),
                                                   ("0.10.0", "0.9.1", 1), ("0.1", "0.1.0", 0),
                                                   ("1.2.0+cpu", "1.2.0", 0), ("2.0.0rc1", "1.9", 1)])
    def test_compare(self, a: str, b: str, order: int) -> None:
        assert install_env.compare_versions(a, b) == order

    def test_problem_says_which_is_older(self) -> None:
        assert install_env.version_problem("0.1.0", "0.1.0") == ""
        older = install_env.version_problem("0.0.9", "0.1.0")
        assert older.startswith("the Stillflow backend (0.0.9) is older than the add-on (0.1.0)")
        assert "Update Backend" in older
        newer = install_env.version_problem("0.2.0", "0.1.0")
        assert newer.startswith("the Stillflow add-on (0.1.0) is older than the backend (0.2.0)")


def _fake_env(home: BackendHome) -> Path:
    """An environment folder with an interpreter file where venv puts it."""
    env = home.new_env_dir()
    python = install_env.env_python(env)
    python.parent.mkdir(parents=True)
    python.write_bytes(b"")
    return env


class TestBackendHome:
    def test_commit_swaps_whole_and_leftovers(self, tmp_path: Path) -> None:
        home = BackendHome(tmp_path / "backend")
        assert home.current() is None and home.leftovers() == []
        first = _fake_env(home)
        assert home.leftovers() == [first]  # not live until committed
        home.commit(first, "0.1.0")
        assert home.current() == install_env.Installed(first, install_env.env_python(first), "0.1.0")
        second = _fake_env(home)
        assert second != first and home.leftovers() == [second]
        home.commit(second, "0.2.0")
        assert home.current().env_dir == second and home.leftovers() == [first]
        assert sorted(p.name for p in home.root.iterdir()) == ["current.json", "envs"]  # no partial record left
        assert home.forget().version == "0.2.0" and home.current() is None

    def test_broken_record_is_no_install(self, tmp_path: Path) -> None:
        home = BackendHome(tmp_path)
        home.record.write_text("{not json")
        assert home.current() is None
        home.record.write_text(json.dumps({"env": "gone", "version": "0.1.0"}))
        assert home.current() is None


class TestSpace:
    def test_not_enough_says_how_much(self, tmp_path: Path) -> None:
        free = shutil.disk_usage(tmp_path).free
        line = install_env.space_problem(tmp_path / "not" / "made", free * 4)
        assert line.startswith(f"not enough disk space for the backend: it needs about {free * 4 * 1.15 / 1e9:.1f} GB")
        assert "\n" not in line
        assert install_env.space_problem(tmp_path, 1000) == ""


class TestBundles:
    def _zip(self, path: Path, platform: str) -> Path:
        with zipfile.ZipFile(path, "w") as bundle:
            bundle.writestr("bundle.json", json.dumps({"platform": platform, "installed_bytes": 123}))
            bundle.writestr("x-1.0-py3-none-any.whl", b"")
        return path

    def test_reads_own_platform(self, tmp_path: Path) -> None:
        bundle = install_env.read_bundle(self._zip(tmp_path / "b.zip", HERE))
        assert bundle.wheels == ("x-1.0-py3-none-any.whl",) and bundle.installed_bytes == 123

    def test_refuses_other_platform(self, tmp_path: Path) -> None:
        other = "windows_x64" if HERE != "windows_x64" else "linux_x64"
        with pytest.raises(ValueError, match=f"is the backend bundle for {other}; this computer needs the one for {HERE}"):
            install_env.read_bundle(self._zip(tmp_path / "b.zip", other))

    @pytest.mark.parametrize("kind", ["missing", "empty folder", "not a zip"])
    def test_bad_bundle_one_line(self, tmp_path: Path, kind: str) -> None:
        path = tmp_path / "bundle"
        if kind == "empty folder":
            path.mkdir()
        elif kind == "not a zip":
            path.write_text("hello")
        with pytest.raises(ValueError) as raised:
            install_env.read_bundle(path)
        assert "\n" not in str(raised.value) and str(path.name) in str(raised.value)


PIP_LOG = """Stillflow backend install from the offline bundle b.zip into /x/env
@@stillflow phase unpack
@@stillflow phase venv
@@stillflow phase pip
Looking in links: /x/.env.bundle
Processing ./wh/stillflow-0.1.0-py3-none-any.whl
Processing ./wh/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl (from stillflow)
Processing ./wh/numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl (from stillflow)
Processing ./wh/typing_extensions-4.16.0-py3-none-any.whl (from torch<3,>=2.4->stillflow)
Installing collected packages: typing-extensions, numpy, torch, stillflow
Successfully installed numpy-2.4.6 stillflow-0.1.0 torch-2.13.0+cpu typing-extensions-4.16.0
@@stillflow phase verify
@@stillflow version 0.1.0
@@stillflow phase done
"""


class TestProgress:
    def test_follows_the_log_in_any_pieces(self) -> None:
        progress = InstallProgress(expected_packages=4, expected_bytes=1000)
        seen = []
        for start in range(0, len(PIP_LOG), 37):  # pieces that end mid-line, as a growing log is read
            progress.feed(PIP_LOG[start:start + 37])
            seen.append((progress.fraction, progress.label))
        fractions = [f for f, _ in seen]
        assert fractions == sorted(fractions) and fractions[-1] == 1.0
        labels = [label for _, label in seen]
        assert "installing torch (2/4)" in labels and "writing 4 packages" in labels
        assert progress.version == "0.1.0" and progress.seen == ["stillflow", "torch", "numpy", "typing-extensions"]

    def test_bytes_written_move_the_bar(self) -> None:
        progress = InstallProgress(expected_packages=4, expected_bytes=2_000_000_000)
        progress.feed(PIP_LOG.split("Successfully")[0])
        before = progress.fraction
        progress.written = 1_000_000_000
        assert progress.fraction > before and progress.label == "writing 4 packages · 1000 MB"

    def test_online_lines(self) -> None:
        progress = InstallProgress()
        progress.feed("@@stillflow phase pip\nCollecting numba>=0.60 (from stillflow)\n"
                      "  Downloading numba-0.68.1-cp311-cp311-manylinux_2_28_x86_64.whl (3.9 MB)\n"
                      "  Using cached llvmlite-0.50.0-cp311-cp311-manylinux_2_28_x86_64.whl (56 MB)\n")
        assert progress.seen == ["numba", "llvmlite"] and progress.package == "llvmlite"


class TestFailures:
    def _line(self, text: str, offline: bool = True) -> str:
        line = failure_line(text, offline=offline, platform="linux_x64", python="3.11")
        assert "\n" not in line
        return line

    def test_missing_from_bundle_names_it(self) -> None:
        log = ("Processing ./wh/stillflow-0.1.0-py3-none-any.whl\nINFO: pip is looking at multiple versions\n"
               "ERROR: Could not find a version that satisfies the requirement torch<3,>=2.4 (from stillflow) "
               "(from versions: none)\nERROR: No matching distribution found for torch<3,>=2.4\n")
        assert self._line(log).startswith("the backend bundle has no torch<3,>=2.4 for this computer (linux_x64, "
                                          "Python 3.11)")
        assert self._line(log, offline=False).startswith("the package index has no build of torch<3,>=2.4")

    def test_no_network(self) -> None:
        log = ("WARNING: Retrying (Retry(total=4)) after connection broken by 'NewConnectionError(... "
               "Failed to establish a new connection: [Errno -3] Temporary failure in name resolution')'\n"
               "ERROR: Could not find a version that satisfies the requirement torch\n"
               "ERROR: No matching distribution found for torch\n")
        assert self._line(log, offline=False).startswith("no network: pip could not reach the package index")

    def test_no_space(self) -> None:
        log = "ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device\n"
        assert self._line(log).startswith("the disk ran out of space")

    def test_worker_error_and_fallback(self) -> None:
        assert self._line("@@stillflow error BadZipFile: File is not a zip file\n") == (
            "the install stopped: BadZipFile: File is not a zip file")
        assert self._line("something\nERROR: pip broke\nmore\n") == "the install failed: ERROR: pip broke"
