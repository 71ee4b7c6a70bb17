"""The engine's CPU kernels: compiled by setup, and a first run that compiles says so (issue 30, point 2)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stillflow.io.images import save_frame
from stillflow.stages import cpu_kernels
from stillflow.warmup import MESSAGE

REPO = Path(__file__).resolve().parents[2]


def _stillflow(args: list[str], cache: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m stillflow ARGS`` with numba's cache in ``cache``."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-m", "stillflow", *args], capture_output=True, text=True, env=env,
                          timeout=1200)


@pytest.mark.skipif(not cpu_kernels.available(), reason="numba is not installed: nothing to compile")
def test_a_first_run_says_it_prepares_the_engine_and_later_runs_do_not(tmp_path: Path) -> None:
    still = tmp_path / "still.png"
    save_frame(still, np.random.default_rng(3).random((40, 48, 3), dtype=np.float32), "png")
    render = ["render", str(still), "--drift", "0,1", "--frames", "2", "--device", "cpu", "--out"]
    cache = tmp_path / "numba-cache"  # empty: as on a fresh install
    first = _stillflow(render + [str(tmp_path / "a")], cache)
    assert first.returncode == 0, first.stderr
    assert f"stillflow: {MESSAGE}" in first.stderr
    again = _stillflow(["prepare-engine"], cache)
    assert again.returncode == 0 and again.stdout.strip() == "the engine was already prepared", again
    second = _stillflow(render + [str(tmp_path / "b")], cache)
    assert second.returncode == 0, second.stderr
    assert MESSAGE not in second.stderr


def test_setup_compiles_the_engine() -> None:
    assert ".venv/bin/python -m stillflow -q prepare-engine" in (REPO / "scripts" / "setup.sh").read_text()


_LOADS_NOTHING = """
import numpy as np
from stillflow import MotionSpec, RenderOptions, render_frames, warmup
warmup.ensure_engine()
loaded = {kernel: len(kernel.overloads) for kernel in warmup._dispatchers()}
rng = np.random.default_rng(5)
image = rng.random((96, 120, 3), dtype=np.float32)
field = rng.uniform(-2.0, 2.0, (2, 96, 120)).astype(np.float32)
for once in (False, True):
    options = RenderOptions(frames=6, device="cpu", once=once)
    for _ in render_frames(image, mask=np.ones((96, 120), np.float32), motion=MotionSpec(kind="field", field=field),
                           options=options):
        pass
print(sorted(kernel.__name__ for kernel, count in loaded.items() if len(kernel.overloads) != count))
"""


@pytest.mark.skipif(not cpu_kernels.available(), reason="numba is not installed: nothing to load")
def test_the_engine_is_loaded_before_a_render_times_its_first_frame() -> None:
    """A cached engine is brought into the process before the frames: the first frame loads no kernel
    (it took 3x the others and the add-on's ETA, paced by it, read 3x the real time left)."""
    done = subprocess.run([sys.executable, "-c", _LOADS_NOTHING], capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"kernels loaded during the render: {done.stdout.strip()}"
