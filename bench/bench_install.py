"""The artist's path from a fresh Blender user folder to a loop, and what Install Backend costs.

Runs in real bpy 5.0.1 (background mode) with a fresh user folder: build the extension zip, install
it, Install Backend from an offline bundle (the operator returns at once; the script runs the
add-on's install timer as Blender's event loop would and times every call), Generate a loop, and
report each step's time, the environment's size on disk and the longest main-thread stall.
``--online`` also installs from the package index (needs pip's access to it; pip's cache makes a
rerun cheap; ``--torch`` pins the build with a pip constraint so the download is the CPU build).
Reference measured in the same run: the same offline install with pip run by hand in a shell.

    .venv-blender/bin/python bench/bench_install.py [--bundle dist/stillflow-backend-linux_x64.zip]
        [--online] [--torch 2.13.0+cpu] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="stillflow-bench-user-")
sys.path.insert(0, str(REPO / "tests" / "addon"))

import numpy as np  # noqa: E402

from blender_scenes import region_mask, saved_still  # noqa: E402


def _size(folder: Path) -> int:
    """Bytes of the files under ``folder`` (hard links counted once)."""
    seen, total = set(), 0
    for root, _, files in os.walk(folder):
        for name in files:
            stat = os.lstat(os.path.join(root, name))
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_size
    return total


def _install_ticked(module: object, prefs: object, action: str = "INSTALL") -> dict[str, float]:
    """Install Backend through the operator, its timer run by hand; seconds and the longest tick in ms."""
    import bpy

    module.install_ops.WAIT_IN_BACKGROUND = False
    started = time.perf_counter()
    assert bpy.ops.stillflow.install_backend(action=action) == {"FINISHED"}
    operator_ms = (time.perf_counter() - started) * 1000
    ticks, phases = [], []
    installer = module.install_ops._installer
    while True:
        phase = f"{installer.state}/{installer.progress.phase}"
        before = time.perf_counter()
        delay = module.install_ops._timer()
        ticks.append(time.perf_counter() - before)
        phases.append(phase)
        if delay is None:
            break
        time.sleep(delay)
    if installer.state != "done":
        raise SystemExit(f"install failed: {installer.message}")
    env = module.properties.backend_home().current()
    return {"seconds": time.perf_counter() - started, "operator_ms": operator_ms, "ticks": len(ticks),
            "longest_tick_ms": max(ticks) * 1000, "median_tick_ms": sorted(ticks)[len(ticks) // 2] * 1000,
            "longest_tick_in": phases[ticks.index(max(ticks))],
            "env_mb": _size(env.env_dir) / 1e6}


def _by_hand(bundle: Path, folder: Path) -> float:
    """Reference: unzip, venv and pip install in a shell; seconds."""
    started = time.perf_counter()
    wheels = folder / "wheels"
    subprocess.run([sys.executable, "-m", "zipfile", "-e", str(bundle), str(wheels)], check=True)
    subprocess.run([sys.executable, "-m", "venv", str(folder / "env")], check=True)
    subprocess.run([str(folder / "env" / "bin" / "python"), "-m", "pip", "install", "-q", "--isolated", "--no-index",
                    "--find-links", str(wheels), "stillflow"], check=True, env={**os.environ, "PIP_CONFIG_FILE": os.devnull})
    return time.perf_counter() - started


def main() -> None:
    """Run the path and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, default=None, help="offline bundle (default: build one)")
    parser.add_argument("--online", action="store_true", help="also install from the package index")
    parser.add_argument("--torch", default="", help="torch version to pin (default: the backend environment's)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="stillflow-bench-install-"))
    torch = args.torch or subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-c", "import torch; "
                                          "print(torch.__version__)"], capture_output=True, text=True).stdout.strip()
    figures: dict[str, object] = {}
    started = time.perf_counter()
    subprocess.run([sys.executable, str(REPO / "scripts" / "build_extension.py"), "--out", str(scratch / "dist"),
                    "--stage", str(scratch / "stage")], check=True, capture_output=True)
    figures["build_zip_s"] = time.perf_counter() - started
    bundle = args.bundle
    if bundle is None:
        started = time.perf_counter()
        bundle = Path(subprocess.run([str(REPO / ".venv" / "bin" / "python"), str(REPO / "scripts" /
                                      "build_backend_bundle.py"), "--out", str(scratch / "bundle"), "--torch",
                                      f"torch=={torch}"], check=True, capture_output=True, text=True).stdout.strip())
        figures["build_bundle_s"] = time.perf_counter() - started
    figures["bundle_mb"] = bundle.stat().st_size / 1e6

    path_started = time.perf_counter()
    import bpy

    zip_path = next((scratch / "dist").glob("stillflow-*-linux_x64.zip"))
    started = time.perf_counter()
    bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default", enable_on_install=True)
    figures["install_zip_s"] = time.perf_counter() - started
    module = sys.modules["bl_ext.user_default.stillflow"]
    prefs = bpy.context.preferences.addons[module.__name__].preferences
    prefs.install_source, prefs.install_bundle = "BUNDLE", str(bundle)
    figures["offline"] = _install_ticked(module, prefs)

    rgba = np.ones((240, 320, 4), np.float32)
    rgba[..., :3] = np.random.default_rng(7).random((240, 320, 3), dtype=np.float32)
    settings = bpy.context.scene.stillflow
    settings.image = saved_still(scratch, "still", rgba)
    settings.mask = region_mask("bench", [(0.2, 0.2), (0.8, 0.2), (0.8, 0.8), (0.2, 0.8)], ((0.3, 0.5), (0.6, 0.5)))
    settings.frames, settings.device = 12, "cpu"
    prefs.output_dir = str(scratch / "out")
    started = time.perf_counter()
    assert bpy.ops.stillflow.generate() == {"FINISHED"} and settings.result_frames == 12
    figures["first_generate_s"] = time.perf_counter() - started
    figures["fresh_user_to_loop_min"] = (time.perf_counter() - path_started) / 60
    module.runner.CONNECTION.close()
    figures["by_hand_offline_s"] = _by_hand(bundle, scratch / "by_hand")

    if args.online:
        bpy.context.preferences.system.use_online_access = True
        constraint = scratch / "constraint.txt"
        constraint.write_text(f"torch=={torch}\n")
        os.environ["PIP_CONSTRAINT"] = str(constraint)
        prefs.install_source = "INDEX"
        figures["online"] = _install_ticked(module, prefs, action="REPAIR")

    module.runner.CONNECTION.close()
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.rmtree(os.environ["BLENDER_USER_RESOURCES"], ignore_errors=True)  # the environments it installed
    if args.json:
        print(json.dumps(figures, indent=1))
        return
    for key, value in figures.items():
        if isinstance(value, dict):
            print(f"{key} install: {value['seconds']:.0f} s, {value['env_mb']:.0f} MB on disk, operator "
                  f"{value['operator_ms']:.1f} ms, {value['ticks']} ticks, longest {value['longest_tick_ms']:.1f} ms, "
                  f"(in {value['longest_tick_in']}), median {value['median_tick_ms']:.2f} ms")
        else:
            print(f"{key}: {value:.2f}")
    offline = figures["offline"]
    print(f"offline install / by hand: {offline['seconds'] / figures['by_hand_offline_s']:.2f}")


if __name__ == "__main__":
    main()
