"""Fixtures for the headless shader tests: one moderngl EGL context per session, skipped without EGL."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import glharness  # noqa: E402  (found through the path entry above)


@pytest.fixture(scope="session")
def renderer() -> Iterator[glharness.PreviewRenderer]:
    """Both preview programs compiled on an EGL context (Mesa llvmpipe on CI)."""
    pytest.importorskip("moderngl")
    try:
        ctx = glharness.create_context()
    except Exception as error:  # moderngl/glcontext raise bare Exception when EGL is missing
        pytest.skip(f"no EGL OpenGL context: {error}")
    preview = glharness.PreviewRenderer(ctx)
    yield preview
    preview.release()
    ctx.release()


@pytest.fixture
def rng() -> np.random.Generator:
    """Seeded generator."""
    return np.random.default_rng(1234)
