"""`stillflow batch` with the local executor: real worker processes, real files, a real SIGINT."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stillflow import render
from stillflow.batch.items import load_items, parse_hints
from stillflow.batch.local import LocalExecutor, default_workers, worker_slots
from stillflow.batch.run import run_batch
from stillflow.batch.work import plan_task
from stillflow.errors import InputError
from stillflow.options import MotionSpec, RenderOptions

from .batch_helpers import FAST, REPO, frames_of, make_folder, no_leftovers, stillflow, summary, write_still

pytestmark = pytest.mark.slow

GIVEN = {"frames": 3, "levels": 2}


class TestItems:
    def test_folder_convention_finds_stills_and_sidecars(self, tmp_path: Path) -> None:
        make_folder(tmp_path, 3)
        items, common = load_items(tmp_path)
        assert [i.name for i in items] == ["still0", "still1", "still2"] and common == {}
        assert items[0].mask == tmp_path / "still0_mask.png" and items[0].motion is None
        assert items[1].motion.kind == "hints" and items[1].motion.anchors == ((5.0, 5.0),)
        assert items[2].motion.kind == "file" and items[2].motion.path == str(tmp_path / "still2_motion.npy")

    def test_hints_file_reads_the_add_ons_bare_form(self) -> None:
        spec = parse_hints("# sky\n10,20,30,40\n5 6\nhint 1,2,3,4\n", "a.hints.txt")
        assert spec.hints == ((10.0, 20.0, 30.0, 40.0), (1.0, 2.0, 3.0, 4.0)) and spec.anchors == ((5.0, 6.0),)
        with pytest.raises(InputError, match="a.hints.txt line 1"):
            parse_hints("1,2,3\n", "a.hints.txt")

    def test_hints_file_errors_name_the_line(self) -> None:
        with pytest.raises(InputError, match="a.hints.txt line 2"):
            parse_hints("hint 1,2,3,4\nhint 1,2\n", "a.hints.txt")
        with pytest.raises(InputError, match="no 'hint"):
            parse_hints("anchor 1 2\n", "a.hints.txt")

    def test_bad_sidecar_fails_only_its_item(self, tmp_path: Path) -> None:
        make_folder(tmp_path, 3)
        (tmp_path / "still0.hints.txt").write_text("hint 1 2 3\n")
        items, _ = load_items(tmp_path)
        assert "still0.hints.txt line 1" in items[0].error and items[1].error is None
        with pytest.raises(InputError, match="line 1"):
            plan_task(items[0], tmp_path / "out", common={}, given={}, default_motion=None, default_mask=None,
                      video=None)

    def test_json_and_csv_manifests(self, tmp_path: Path) -> None:
        write_still(tmp_path / "stills" / "a.png", 1)
        (tmp_path / "m.json").write_text(json.dumps({"options": {"fps": 12.0}, "items": [
            {"image": "stills/a.png", "name": "first", "drift": [0, 1], "options": {"frames": 5}},
            {"image": "stills/a.png", "name": "second", "hints": [[1, 2, 30, 2]], "video": "gif"}]}))
        items, common = load_items(tmp_path / "m.json")
        assert common == {"fps": 12.0}
        assert items[0].image == tmp_path / "stills" / "a.png" and items[0].options == {"frames": 5}
        assert items[0].motion.drift == (0, 1) and items[1].motion.hints == ((1, 2, 30, 2),)
        (tmp_path / "m.csv").write_text("image,name,drift,frames,inpaint,speed\n"
                                        "stills/a.png,one,\"0,1\",4,false,0.5\nstills/a.png,two,,,,\n")
        items, _ = load_items(tmp_path / "m.csv")
        assert items[0].options == {"frames": 4, "inpaint": False, "speed": 0.5}
        assert items[0].motion.drift == (0.0, 1.0) and items[1].motion is None and items[1].options == {}

    def test_bad_manifests_are_refused(self, tmp_path: Path) -> None:
        (tmp_path / "dup.json").write_text(json.dumps(["a.png", "a.png"]))
        with pytest.raises(InputError, match="two items are named 'a'"):
            load_items(tmp_path / "dup.json")
        (tmp_path / "key.json").write_text(json.dumps([{"image": "a.png", "colour": 1}]))
        with pytest.raises(InputError, match="unknown key"):
            load_items(tmp_path / "key.json")
        (tmp_path / "m.csv").write_text("image,frames\na.png,many\n")
        with pytest.raises(InputError, match="line 2 column frames: expected an integer"):
            load_items(tmp_path / "m.csv")

    def test_worker_slots_share_gpus_and_threads(self) -> None:
        assert worker_slots(2, 0, 16) == [(None, 8), (None, 8)]
        assert worker_slots(3, 2, 16) == [("cuda:0", 5), ("cuda:1", 5), ("cuda:0", 5)]

    def test_default_workers_two_on_a_cpu_machine_one_per_gpu(self) -> None:
        assert default_workers(0, 2) == 2 and default_workers(0, 16) == 2 and default_workers(0, 1) == 1
        assert default_workers(3, 16) == 3


def test_batch_renders_skips_and_records_failures(tmp_path: Path) -> None:
    source = make_folder(tmp_path / "src", 3, bad="still1b")
    out = tmp_path / "out"
    default = MotionSpec(kind="drift", drift=(0.0, 1.0))
    items, _ = load_items(source)
    first = run_batch(items, out, LocalExecutor(2, gpus=0), given=GIVEN, default_motion=default)
    assert [o.status for o in first.outcomes] == ["done", "done", "failed", "done"]
    assert "still1b" in first.outcomes[2].name and first.outcomes[2].cause and "\n" not in first.outcomes[2].cause
    direct = render(source / "still1.png", tmp_path / "direct", motion=items[1].motion,
                    options=RenderOptions(**GIVEN))
    assert frames_of(out / "still1") == frames_of(direct.out_dir)
    manifest = json.loads((out / "still0" / "manifest.json").read_text())
    assert manifest["batch"]["key"] and manifest["mask_fraction"] < 1.0, "the sidecar mask was used"
    recorded = summary(out)
    assert recorded["still1b"]["status"] == "failed" and recorded["still0"]["seconds"] > 0
    # same inputs: everything finished is skipped; a changed input or option renders again
    again = run_batch(items, out, LocalExecutor(1, gpus=0), given=GIVEN, default_motion=default)
    assert [o.status for o in again.outcomes] == ["skipped", "skipped", "failed", "skipped"]
    write_still(source / "still2.png", 99)
    changed = run_batch(items, out, LocalExecutor(1, gpus=0), given={**GIVEN, "fps": 10.0}, default_motion=default)
    assert [o.status for o in changed.outcomes] == ["done", "done", "failed", "done"]
    assert json.loads((out / "still2" / "manifest.json").read_text())["fps"] == 10.0
    assert no_leftovers(out) == []


def test_cli_manifest_with_per_item_options_and_video(tmp_path: Path) -> None:
    write_still(tmp_path / "a.png", 1)
    (tmp_path / "list.csv").write_text("image,name,drift,frames\na.png,short,\"0,1\",2\na.png,long,\"90,1\",4\n")
    done = stillflow("batch", str(tmp_path / "list.csv"), "--out", str(tmp_path / "out"), "--levels", "2",
                     "--video", "gif")
    assert done.returncode == 0, done.stderr
    assert "short" in done.stdout and "2 done" in done.stdout
    assert len(frames_of(tmp_path / "out" / "short")) == 2 and len(frames_of(tmp_path / "out" / "long")) == 4
    assert (tmp_path / "out" / "long" / "long.gif").stat().st_size > 0
    assert "batch 2/2" in done.stderr, "plain progress lines when stderr is not a terminal"


def test_failed_items_give_exit_1_and_ray_missing_gives_exit_2(tmp_path: Path) -> None:
    make_folder(tmp_path / "src", 1)
    failed = stillflow("batch", str(tmp_path / "src"), "--out", str(tmp_path / "out"), *FAST)
    assert failed.returncode == 1 and "no motion source" in failed.stdout
    code = ("import sys; sys.modules['ray'] = None\nfrom stillflow.cli import main\n"
            f"sys.exit(main(['batch', {str(tmp_path / 'src')!r}, '--out', {str(tmp_path / 'o')!r}, "
            "'--executor', 'ray']))")
    missing = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "pip install 'stillflow[ray]'" in missing.stderr


def test_ray_address_auto_never_starts_a_cluster_silently(tmp_path: Path) -> None:
    services = pytest.importorskip("ray._private.services", reason="Ray is not installed")
    if services.find_gcs_addresses():
        pytest.skip("a Ray cluster runs on this machine: --address auto would rightly join it")
    make_folder(tmp_path / "src", 1)
    done = stillflow("batch", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--executor", "ray",
                     "--address", "auto", "--drift", "0,1", *FAST)
    assert done.returncode == 2 and "no running Ray cluster found" in done.stderr, done.stderr
    assert "--address local" in done.stderr and not (tmp_path / "out").exists()


def test_ctrl_c_stops_cleanly_and_a_rerun_continues(tmp_path: Path) -> None:
    source = tmp_path / "src"
    for index in range(6):
        # The first item is small; the rest take seconds each, so that Ctrl+C lands mid-batch however
        # long this test's own process waits for the CPU on a busy machine.
        write_still(source / f"s{index}.png", index, *((96, 128) if index == 0 else (288, 384)))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "stillflow", "batch", str(source), "--out", str(out), "--drift", "0,1",
               "--frames", "40", "--levels", "2", "--workers", "1"]
    # As from a terminal: a test run started in the background inherits SIGINT ignored, and Python then
    # never turns it into KeyboardInterrupt (every item finished, exit 0, on such a run).
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while not (out / "s0" / "manifest.json").exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, process.communicate()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "run the same command again" in stderr
    recorded = summary(out)
    finished = [name for name, item in recorded.items() if item["status"] == "done"]
    assert finished and len(finished) < 6 and json.loads((out / "batch.json").read_text())["interrupted"]
    assert no_leftovers(out) == [], "a half-written result was left behind"
    for name in finished:
        assert len(frames_of(out / name)) == 40
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(finished)
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert rerun.returncode == 0, rerun.stderr
    statuses = {name: item["status"] for name, item in summary(out).items()}
    assert all(statuses[name] == "skipped" for name in finished)
    assert sorted(statuses.values()) == sorted(["skipped"] * len(finished) + ["done"] * (6 - len(finished)))
    assert all(len(frames_of(out / f"s{i}")) == 40 for i in range(6))
