"""Take folders of loop results: numbering, history pruning, whole-folder moves (plain Python, real files)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from addon.core import result_paths


def _take(image_dir: Path, name: str, frames: int = 2) -> Path:
    """A take folder holding ``frames`` frame files and a manifest."""
    folder = image_dir / name
    folder.mkdir(parents=True)
    for index in range(frames):
        (folder / f"frame_{index:04d}.png").write_bytes(b"png%d" % index)
    (folder / "manifest.json").write_text("{}")
    return folder


class TestNames:
    def test_folder_name(self) -> None:
        assert result_paths.folder_name("lake.png") == "lake.png"
        assert result_paths.folder_name("lake.png") != result_paths.folder_name("lake.jpg")
        assert result_paths.folder_name("my photo (2).JPG") == "my_photo_2_.JPG"
        assert result_paths.folder_name("...") == "loop"
        assert result_paths.folder_name("../../etc") == "etc"
        assert result_paths.folder_name("Render Result") == "Render_Result"

    def test_blend_results_root(self, tmp_path: Path) -> None:
        assert result_paths.blend_results_root(str(tmp_path / "shot.blend")) == tmp_path.resolve() / "stillflow"
        assert result_paths.blend_results_root("") is None

    def test_session_folder_is_per_process(self) -> None:
        assert result_paths.session_folder_name(pid=1, started=0) != result_paths.session_folder_name(pid=2, started=0)
        assert result_paths.session_folder_name().startswith("unsaved-")


class TestTakes:
    def test_numbering(self, tmp_path: Path) -> None:
        image_dir = tmp_path / "lake"
        assert result_paths.next_take(image_dir) == image_dir / "take_0001"
        _take(image_dir, "take_0001")
        _take(image_dir, "take_0010")
        (image_dir / ".take_0011.tmp-abcd").mkdir()  # staging folders are not takes
        (image_dir / "notes.txt").write_text("x")
        assert [p.name for p in result_paths.takes(image_dir)] == ["take_0001", "take_0010"]
        assert result_paths.next_take(image_dir) == image_dir / "take_0011"

    @pytest.mark.parametrize(("keep", "left"), [(0, ["take_0004"]), (2, ["take_0002", "take_0003", "take_0004"]),
                                                (9, ["take_0001", "take_0002", "take_0003", "take_0004"])])
    def test_prune_keeps_history(self, tmp_path: Path, keep: int, left: list[str]) -> None:
        image_dir = tmp_path / "lake"
        for number in range(1, 5):
            _take(image_dir, f"take_{number:04d}")
        result_paths.prune_takes(image_dir, keep, image_dir / "take_0004")
        assert [p.name for p in result_paths.takes(image_dir)] == left

    def test_prune_leaves_newer_takes(self, tmp_path: Path) -> None:
        """After an undo the current take is an older one; the undone (newer) take stays for a redo."""
        image_dir = tmp_path / "lake"
        for number in range(1, 5):
            _take(image_dir, f"take_{number:04d}")
        removed = result_paths.prune_takes(image_dir, 0, image_dir / "take_0002")
        assert [p.name for p in removed] == ["take_0001"]
        assert [p.name for p in result_paths.takes(image_dir)] == ["take_0002", "take_0003", "take_0004"]


class TestMove:
    def test_rename(self, tmp_path: Path) -> None:
        source = _take(tmp_path / "jobs", "job1", frames=3)
        target = result_paths.move_folder(source, tmp_path / "stillflow" / "lake" / "take_0001")
        assert sorted(p.name for p in target.iterdir()) == ["frame_0000.png", "frame_0001.png", "frame_0002.png",
                                                            "manifest.json"]
        assert not source.exists()

    def test_across_file_systems(self, tmp_path: Path) -> None:
        if not os.path.isdir("/dev/shm") or os.stat("/dev/shm").st_dev == os.stat(tmp_path).st_dev:
            pytest.skip("needs /dev/shm on another file system than the temp folder")
        with tempfile.TemporaryDirectory(dir="/dev/shm") as other:
            source = _take(Path(other), "job1")
            target = result_paths.move_folder(source, tmp_path / "lake" / "take_0001")
            assert (target / "frame_0001.png").read_bytes() == b"png1" and not source.exists()
            assert [p.name for p in (tmp_path / "lake").iterdir()] == ["take_0001"]  # no staging left

    def test_refuses_existing_target(self, tmp_path: Path) -> None:
        source = _take(tmp_path / "jobs", "job1")
        taken = _take(tmp_path / "lake", "take_0001")
        with pytest.raises(FileExistsError, match="already exists"):
            result_paths.move_folder(source, taken)
        assert source.is_dir() and (taken / "frame_0000.png").is_file()

    def test_same_folder(self, tmp_path: Path) -> None:
        folder = _take(tmp_path, "take_0001")
        assert result_paths.move_folder(folder, folder) == folder.resolve()

    def test_is_inside(self, tmp_path: Path) -> None:
        assert result_paths.is_inside(tmp_path / "a" / "b", tmp_path)
        assert not result_paths.is_inside(tmp_path.parent, tmp_path)
