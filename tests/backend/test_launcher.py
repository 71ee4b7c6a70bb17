"""The local launcher leaves nothing in the temp folder once the backend it started exits."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest

from stillflow.link.launcher import start_local_backend


def test_stop_removes_the_backend_s_temp_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    backend = start_local_backend(sys.executable, timeout=120.0, results_dir=tmp_path / "results")
    try:
        made = [path.name for path in temp.iterdir()]
        assert len(made) == 1 and made[0].startswith("stillflow-backend-"), made
        assert Path(backend.log_path).is_file()
    finally:
        assert backend.stop() == 0
    assert list(temp.iterdir()) == []
