"""addon/core/request.py: panel values -> RenderOptions / MotionSpec (plain Python)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from addon.core import request
from addon.core.lib import load

_options = load("options")
InputError = load("errors").InputError


class TestOptionField:
    def test_feature_defaults_come_from_the_dataclass(self) -> None:
        defaults = _options.RenderOptions()
        for name in request.SCENE_OPTIONS:
            assert request.option_field(name)[0] == getattr(defaults, name)

    def test_exception(self) -> None:
        with pytest.raises(KeyError):
            request.option_field("no_such_option")


class TestBuildOptions:
    def test_feature(self) -> None:
        options = request.build_options({"frames": 8, "fps": 12.0, "speed": 0.5, "format": "exr", "loops": 2,
                                         "unrelated": 1})
        # loops is not a scene option (it would only repeat a backend video the add-on never asks for)
        assert dataclasses.replace(_options.RenderOptions(), frames=8, fps=12.0, speed=0.5, format="exr") == options

    def test_exception(self) -> None:
        with pytest.raises(InputError, match="frames must be an integer"):
            request.build_options({"frames": 0})

    def test_detail_passes_through(self) -> None:
        assert request.build_options({"detail": "precise"}).detail == "precise"
        with pytest.raises(InputError, match="detail must be one of sharp, precise, restore, smooth"):
            request.build_options({"detail": "crisp"})


class TestBuildMotion:
    def test_feature_hints(self) -> None:
        motion = request.build_motion("HINTS", hints=[(1, 2, 3, 4)], anchors=[(5, 6)])
        assert motion.kind == "hints" and motion.hints == ((1.0, 2.0, 3.0, 4.0),) and motion.anchors == ((5.0, 6.0),)

    def test_exception_arrows_missing(self) -> None:
        with pytest.raises(InputError, match="motion arrows are missing \\(Mask 'Sky'\\)"):
            request.build_motion("HINTS", arrows_from="Sky")

    def test_feature_file(self, tmp_path: Path) -> None:
        path = tmp_path / "wind.npy"
        path.write_bytes(b"")
        assert request.build_motion("FILE", path=str(path)).path == str(path)

    @pytest.mark.parametrize(("source", "message"), [("FILE", "motion file .* does not exist"),
                                                     ("CLIP", "reference clip .* does not exist")],
                             ids=["file", "clip"])
    def test_exception_missing_file(self, tmp_path: Path, source: request.MotionSource, message: str) -> None:
        with pytest.raises(InputError, match=message):
            request.build_motion(source, path=str(tmp_path / "nope"))

    def test_exception_no_path(self) -> None:
        with pytest.raises(InputError, match="no reference clip chosen"):
            request.build_motion("CLIP")
