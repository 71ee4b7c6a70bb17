"""Both test runs: the user's temp and data folders stand in for the real ones and must gain nothing.

At import (before any test module, bpy or backend process starts) $TMPDIR and $XDG_DATA_HOME point
at a fresh folder of this session, so every process the tests start inherits them. At the end of the
session ``nothing_left_behind`` fails when a Stillflow file is still there: a backend that wrote into
the per-user results folder (~/.local/share/stillflow) instead of its test's own ``--results``, a
launcher's ``stillflow-backend-*`` folder, an add-on log. pytest's own temp folders stay where they were.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

_REAL_TEMP = tempfile.gettempdir()
os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", _REAL_TEMP)
os.environ.setdefault("RAY_TMPDIR", _REAL_TEMP)  # Ray's unix sockets need a short path (its default)
_USER = Path(tempfile.mkdtemp(prefix="stillflow-tests-user-"))
USER_TEMP = _USER / "temp"
USER_DATA = _USER / "data"
for _folder in (USER_TEMP, USER_DATA):
    _folder.mkdir()
os.environ["TMPDIR"] = str(USER_TEMP)
os.environ["XDG_DATA_HOME"] = str(USER_DATA)
tempfile.tempdir = None  # recomputed from $TMPDIR on next use
atexit.register(shutil.rmtree, _USER, True)


def stillflow_leftovers() -> list[str]:
    """Stillflow's files and folders in the stand-in temp and data folders."""
    found = [path for path in USER_TEMP.iterdir() if path.name.lower().startswith("stillflow")]
    found += list(USER_DATA.iterdir())
    return sorted(str(path) for path in found)


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind() -> Iterator[None]:
    """Fail the session when a test, backend or add-on left a file in the user's temp or data folder."""
    yield
    left = stillflow_leftovers()
    shutil.rmtree(_USER, ignore_errors=True)
    assert not left, f"left behind in the user's temp/data folder: {left}"
