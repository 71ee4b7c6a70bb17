"""Colour-space choice and view advice for loop frames; online access for Connect (plain Python)."""
from __future__ import annotations

import pytest

from addon.core import colour, network
from addon.core.lib import load

BackendUnavailable = load("errors").BackendUnavailable


class TestColour:
    @pytest.mark.parametrize("suffix", [".png", ".PNG", ".exr"])
    def test_frames_are_srgb(self, suffix: str) -> None:
        assert colour.frame_colorspace(suffix) == "sRGB"

    def test_unknown_suffix(self) -> None:
        with pytest.raises(ValueError, match="not '.tif'"):
            colour.frame_colorspace(".tif")

    def test_view_advice(self) -> None:
        assert colour.view_advice("Standard", "None", 0.0, 1.0) is None
        assert colour.view_advice("AgX", "None", 0.0, 1.0) == (
            "the AgX view change the loop's colours; use Standard to match the photo")
        assert "the look Punchy and exposure +0.5" in colour.view_advice("Standard", "Punchy", 0.5, 1.0)
        assert "gamma 2.2" in colour.view_advice("Standard", "None", 0.0, 2.2)


class TestNetwork:
    @pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:5555", "tcp://localhost:5555", "tcp://[::1]:5555",
                                          "tcp://127.1.2.3:9", "ipc:///tmp/stillflow.sock", "inproc://x",
                                          " tcp://LOCALHOST:1 "])
    def test_loopback(self, endpoint: str) -> None:
        assert network.is_loopback(endpoint)
        network.check_online_access(endpoint, online_access=False)

    @pytest.mark.parametrize("endpoint", ["tcp://gpu-box:5555", "tcp://10.0.0.2:5555", "tcp://[2001:db8::1]:5555",
                                          "tcp://127.0.0.1.evil.com:1", "udp://127.0.0.1:1", ""])
    def test_remote(self, endpoint: str) -> None:
        assert not network.is_loopback(endpoint)

    def test_remote_needs_online_access(self) -> None:
        network.check_online_access("tcp://gpu-box:5555", online_access=True)
        with pytest.raises(BackendUnavailable, match="^online access is off in Blender, so the add-on may not "
                                                     "connect to tcp://gpu-box:5555; turn on Preferences > System "
                                                     "> Network > Allow Online Access"):
            network.check_online_access("tcp://gpu-box:5555", online_access=False)
        with pytest.raises(BackendUnavailable, match="started in offline mode.*without --offline-mode"):
            network.check_online_access("tcp://gpu-box:5555", online_access=False, forced_offline=True)
