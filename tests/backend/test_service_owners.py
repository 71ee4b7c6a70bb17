"""Results belong to the client that made them: owners, the path checked at submit, scratch space, shown paths.

Each test talks to a real backend process over loopback.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from stillflow.errors import InputError
from stillflow.io.images import save_frame
from stillflow.link.client import Client
from stillflow.link.launcher import LocalBackend, start_local_backend
from stillflow.options import MotionSpec, RenderOptions

from .service_helpers import image, long_image, snapshot

pytestmark = pytest.mark.slow

DRIFT = MotionSpec(kind="drift", drift=(0.0, 1.0))
SMALL = RenderOptions(frames=2, levels=1)
LONG = RenderOptions(frames=1200, levels=1)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("owners") / "results"


@pytest.fixture(scope="module")
def backend(results: Path) -> Iterator[LocalBackend]:
    started = start_local_backend(sys.executable, log_path=str(results.parent / "serve.log"), timeout=120.0,
                                  results_dir=results)
    yield started
    assert started.stop() == 0, Path(started.log_path).read_text()[-2000:]


def _refusal(client: Client, **submit: object) -> str:
    """The text of a submit the backend must refuse as bad input."""
    with pytest.raises(InputError) as refused:
        client.submit(image(9, 16, 16), motion=DRIFT, options=SMALL, **submit)  # type: ignore[arg-type]
    return str(refused.value)


def test_a_result_is_replaced_only_by_the_client_that_made_it(backend: LocalBackend, results: Path) -> None:
    (results / "notes").mkdir(parents=True)
    (results / "notes" / "todo.txt").write_text("not a result")
    # bob stands for a client of another user: it cannot read the results folder's owner key
    with (Client(backend.endpoint, timeout=10.0, as_owner=False) as alice,
          Client(backend.endpoint, timeout=10.0, as_owner=False) as bob):
        alice.wait(alice.submit(image(1, 16, 16), motion=DRIFT, options=SMALL, out_dir="shared"), timeout=120)
        kept = snapshot(results / "shared")
        foreign = _refusal(bob, out_dir="shared")
        absolute = _refusal(bob, out_dir=str(results / "shared"))
        other = _refusal(bob, out_dir="notes")
        # the same words as for any folder that is not the caller's: nothing tells bob it is alice's
        assert foreign.replace("shared", "NAME") == other.replace("notes", "NAME")
        assert "is not one of this client's results" in foreign and str(results) in absolute
        assert snapshot(results / "shared") == kept
        again = alice.wait(alice.submit(image(2, 16, 16), motion=DRIFT, options=SMALL, out_dir="shared"),
                           timeout=120)
        assert again["out_dir"] == str(results / "shared") and snapshot(results / "shared") != kept


def test_the_backends_own_user_replaces_any_result_with_the_owner_key(backend: LocalBackend, results: Path) -> None:
    key_file = results / ".stillflow" / "owner.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    with (Client(backend.endpoint, timeout=10.0, as_owner=False) as other,
          Client(backend.endpoint, timeout=10.0) as user):
        other.wait(other.submit(image(11, 16, 16), motion=DRIFT, options=SMALL, out_dir="keep"), timeout=120)
        kept = snapshot(results / "keep")
        done = user.wait(user.submit(image(12, 16, 16), motion=DRIFT, options=SMALL, out_dir=str(results / "keep")),
                         timeout=120)
        assert done["out_dir"] == str(results / "keep") and snapshot(results / "keep") != kept
        # a second `stillflow submit` into the same folder is the same user again
        again = user.wait(user.submit(image(13, 16, 16), motion=DRIFT, options=SMALL, out_dir="keep"), timeout=120)
        assert again["out_dir"] == str(results / "keep")
        assert "is not one of this client's results" in _refusal(other, out_dir="keep")
    wrong = "0" * 64 if key_file.read_text() != "0" * 64 else "1" * 64
    with Client(backend.endpoint, timeout=10.0, as_owner=False) as liar:
        liar.hello()
        with pytest.raises(InputError, match="owner_key is not the key"):
            liar._request("submit", body={"options": {"frames": 2, "levels": 1}, "motion": {"kind": "drift",
                          "drift": [0.0, 1.0]}, "out_dir": "keep", "owner_key": wrong},
                          parts={"image": image(14, 16, 16)})
    assert snapshot(results / "keep") != kept


def test_a_video_never_replaces_a_file_that_is_not_the_clients(backend: LocalBackend, results: Path) -> None:
    results.mkdir(parents=True, exist_ok=True)
    (results / "theirs.mp4").write_bytes(b"a video Stillflow did not write")
    with Client(backend.endpoint, timeout=10.0, as_owner=False) as client:
        first = client.submit(image(3, 16, 16), motion=DRIFT, options=SMALL, out_dir="mine", video="theirs.mp4")
        assert first.video == str(results / "theirs-2.mp4")
        done = client.wait(first, timeout=120)
        again = client.wait(client.submit(image(4, 16, 16), motion=DRIFT, options=SMALL, out_dir="mine",
                                          video="theirs-2.mp4"), timeout=120)  # its own: replaced
        inside = client.wait(client.submit(image(5, 16, 16), motion=DRIFT, options=SMALL, out_dir="mine",
                                           video="mine/loop.gif"), timeout=120)
    assert (results / "theirs.mp4").read_bytes() == b"a video Stillflow did not write"
    assert done["video"] == again["video"] == str(results / "theirs-2.mp4") and (results / "theirs-2.mp4").is_file()
    assert inside["video"] == str(results / "mine" / "loop.gif") and (results / "mine" / "loop.gif").is_file()
    with Client(backend.endpoint, timeout=10.0, as_owner=False) as other:
        moved = other.submit(image(6, 16, 16), motion=DRIFT, options=SMALL, out_dir="others", video="theirs-2.mp4")
        assert moved.video == str(results / "theirs-2-2.mp4")  # the name it asked for, numbered
        other.wait(moved, timeout=120)


def test_a_folder_swapped_for_a_link_after_submit_gets_nothing(backend: LocalBackend, results: Path,
                                                               tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (results / "swap").mkdir(parents=True)
    with Client(backend.endpoint, timeout=10.0) as client:
        blocker = client.submit(long_image(4), motion=DRIFT, options=LONG)  # one worker: the next job waits
        job = client.submit(image(5, 16, 16), motion=DRIFT, options=SMALL, out_dir="swap/loop")
        shutil.rmtree(results / "swap")
        (results / "swap").symlink_to(outside, target_is_directory=True)
        client.cancel(blocker)
        with pytest.raises(InputError, match="changed while the job ran"):
            client.wait(job, timeout=300)
    assert list(outside.iterdir()) == []


def test_scratch_of_a_killed_backend_is_removed_by_the_next(tmp_path: Path) -> None:
    results = tmp_path / "results"
    still = tmp_path / "still.png"
    save_frame(still, long_image(6).astype(np.float32) / 255, "png")
    first = start_local_backend(sys.executable, log_path=str(tmp_path / "first.log"), timeout=120.0,
                                results_dir=results)
    scratch = results / ".stillflow" / "scratch"
    try:
        with Client(first.endpoint, timeout=10.0) as client:
            job = client.submit(str(still), motion=DRIFT, options=LONG)  # the file's bytes go up
            while job.state == "queued":  # its first progress report comes after the upload is in scratch
                client.poll(0.5)
            assert job.state == "running", job.error
            uploads = [p.name for p in scratch.rglob("image-*")]
            assert uploads, "the uploaded still is not in the backend's own scratch folder"
            os.kill(first.process.pid, signal.SIGKILL)
    finally:
        first.stop()
    left = [p for p in scratch.iterdir() if p.name.endswith(f"-{first.process.pid}")]
    assert left and any(left[0].rglob("image-*")), "a killed backend leaves its scratch (removed by the next)"
    second = start_local_backend(sys.executable, log_path=str(tmp_path / "second.log"), timeout=120.0,
                                 results_dir=results)
    try:
        assert not left[0].exists()
        assert [p.name for p in scratch.iterdir()] == [left[0].name.rsplit("-", 1)[0] + f"-{second.process.pid}"]
    finally:
        assert second.stop() == 0
    assert list(scratch.iterdir()) == []


def test_remote_clients_see_paths_relative_to_the_results_folder(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    made = subprocess.run([sys.executable, "-m", "stillflow", "keys", str(keys), "--client", "alice"],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    results, models = tmp_path / "results", tmp_path / "models"
    models.mkdir()
    (results / "notes").mkdir(parents=True)
    (results / "notes" / "todo.txt").write_text("not a result")
    credentials = {"server_key": keys / "server.key", "client_keys": keys / "alice.key_secret"}
    backend = start_local_backend(sys.executable, log_path=str(tmp_path / "serve.log"), timeout=120.0,
                                  results_dir=results, extra_args=("--keys", str(keys), "--models", str(models)),
                                  **credentials)
    try:
        with Client(backend.endpoint, timeout=10.0, **credentials) as client:
            hello = client.hello()
            assert hello["results_dir"] is None and hello["models"]["path"] is None
            assert all(f["path"] is None for f in hello["models"]["files"].values())
            job = client.submit(image(7, 16, 16), motion=DRIFT, options=SMALL, out_dir="shots/one",
                                video="shots/one/loop.gif")
            assert (job.out_dir, job.video) == ("shots/one", "shots/one/loop.gif")
            assert client.status(job)["out_dir"] == "shots/one"
            done = client.wait(job, timeout=120)
            assert done["out_dir"] == "shots/one" and done["video"] == "shots/one/loop.gif"
            assert done["frame_paths"] == ["shots/one/frame_0000.png", "shots/one/frame_0001.png"]
            refused = _refusal(client, out_dir="notes")
            assert str(tmp_path) not in refused and str(tmp_path) not in str(hello)
    finally:
        assert backend.stop() == 0
