"""Sway and shimmer: seamless by construction, frame 0 and static pixels exact, the amplitude asked for, no blur."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stillflow import MotionSpec, RenderOptions, render_frames
from stillflow.options import Region, SwaySpec
from stillflow.pipeline import prepare
from stillflow.stages.sway import sway_displacement
from stillflow.stages.sway_warp import warp_sway

from ..tolerances import FLOAT32_ATOL

SEAM_MAX = 1.05
"""The step from frame N - 1 to frame 0 is no larger than a typical step (issue 27)."""

AMPLITUDE_REL = 0.05
"""Displacement amplitude measured by optical flow on the output, relative to the one asked for (issue 27)."""

SHARPNESS_RANGE = (0.9, 1.1)
"""Every frame's Laplacian variance inside the region, relative to frame 0's (issue 27)."""


@pytest.fixture
def foliage(shared_data: Path) -> np.ndarray:
    """A real photo at 256x192, float32 RGB in [0, 1] (fine detail: the blur of a sub-pixel warp shows)."""
    import cv2

    pixels = cv2.imread(str(shared_data / "stills" / "scg-IMG_6036.png"), cv2.IMREAD_COLOR)
    pixels = cv2.resize(pixels, (256, 192), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def _box(height: int, width: int) -> np.ndarray:
    """A region mask with a static frame of 30 px around it."""
    mask = np.zeros((height, width), np.float32)
    mask[30:-30, 30:-30] = 1.0
    return mask


def _gray(frame: np.ndarray) -> np.ndarray:
    """Luma as float32."""
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def _sway_frames(image: np.ndarray, spec: SwaySpec, frames: int, flow: MotionSpec | None = None) -> list[np.ndarray]:
    """The loop of one swaying region in a static frame."""
    motion = MotionSpec(kind="sway", sway=spec) if flow is None else flow
    region = Region(mask=_box(*image.shape[:2]), motion=motion)
    return list(render_frames(image, regions=[region], options=RenderOptions(frames=frames, refine_mask=False)))


class TestSway:
    def test_frame_zero_static_pixels_and_seam(self, foliage: np.ndarray) -> None:
        frames = _sway_frames(foliage, SwaySpec(amplitude=3.0, cycles=1, angle=0.0), 24)
        assert np.array_equal(frames[0], foliage)
        for frame in frames:
            assert np.array_equal(frame[:30], foliage[:30]) and np.array_equal(frame[:, :30], foliage[:, :30])
            assert np.array_equal(frame[-30:], foliage[-30:]) and np.array_equal(frame[:, -30:], foliage[:, -30:])
        assert not np.array_equal(frames[6], foliage)
        steps = [float(np.abs(frames[t + 1] - frames[t]).mean()) for t in range(len(frames) - 1)]
        seam = float(np.abs(frames[0] - frames[-1]).mean()) / float(np.median(steps))
        assert seam <= SEAM_MAX, f"seam {seam:.3f}"

    def test_frame_n_is_frame_zero(self, foliage: np.ndarray) -> None:
        region = Region(mask=_box(192, 256), motion=MotionSpec(kind="sway", sway=SwaySpec(amplitude=2.5, cycles=3)))
        prepared = prepare(foliage, mask=None, motion=MotionSpec(), options=RenderOptions(frames=20), regions=[region])
        assert not sway_displacement(prepared.sway, 20).any()
        assert np.array_equal(warp_sway(foliage, prepared.sway, 20), foliage)
        np.testing.assert_array_equal(warp_sway(foliage, prepared.sway, 27), warp_sway(foliage, prepared.sway, 7))

    @pytest.mark.parametrize("amplitude, angle", [(3.0, 0.0), (2.0, 90.0)], ids=["3px-right", "2px-up"])
    def test_amplitude_by_optical_flow(self, foliage: np.ndarray, amplitude: float, angle: float) -> None:
        import cv2

        frames = _sway_frames(foliage, SwaySpec(amplitude=amplitude, cycles=1, angle=angle), 24)
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        first = np.clip(_gray(frames[0]) * 255, 0, 255).astype(np.uint8)
        axis = 0 if angle == 0.0 else 1
        along = np.stack([dis.calc(first, np.clip(_gray(f) * 255, 0, 255).astype(np.uint8), None)[..., axis]
                          for f in frames])
        # The edge's taper (2 x amplitude) and DIS's own border are left out.
        inner = (slice(50, -50), slice(50, -50))
        measured = float(np.median((along.max(axis=0) - along.min(axis=0))[inner] / 2))
        assert abs(measured - amplitude) <= AMPLITUDE_REL * amplitude, f"measured {measured:.3f} px"

    def test_sharpness_steady(self, foliage: np.ndarray) -> None:
        import cv2

        frames = _sway_frames(foliage, SwaySpec(amplitude=1.5, cycles=1, angle=45.0), 16)
        inner = (slice(40, -40), slice(40, -40))

        def sharpness(frame: np.ndarray) -> float:
            return float(cv2.Laplacian(_gray(frame), cv2.CV_32F)[inner].var())

        ratios = [sharpness(frame) / sharpness(frames[0]) for frame in frames]
        assert SHARPNESS_RANGE[0] <= min(ratios) and max(ratios) <= SHARPNESS_RANGE[1], ratios

    def test_gust_travels(self, foliage: np.ndarray) -> None:
        """With a gust the region moves as a wave, not in lockstep: two far points peak at other frames."""
        region = Region(mask=_box(192, 256), motion=MotionSpec(kind="sway", sway=SwaySpec(
            amplitude=2.0, angle=0.0, gust_angle=0.0, noise=0.0)))
        prepared = prepare(foliage, mask=None, motion=MotionSpec(), options=RenderOptions(frames=24), regions=[region])
        left, right = [[sway_displacement(prepared.sway, t)[0, 60, col] for t in range(24)] for col in (20, 150)]
        assert abs(int(np.argmax(left)) - int(np.argmax(right))) >= 6
        lockstep = Region(mask=_box(192, 256), motion=MotionSpec(kind="sway", sway=SwaySpec(
            amplitude=2.0, gust_speed=0.0, noise=0.0)))
        prepared = prepare(foliage, mask=None, motion=MotionSpec(), options=RenderOptions(frames=24),
                           regions=[lockstep])
        left, right = [[sway_displacement(prepared.sway, t)[0, 60, col] for t in range(24)] for col in (20, 150)]
        np.testing.assert_allclose(left, right, atol=1e-6)

    def test_along_the_arrows(self, foliage: np.ndarray) -> None:
        motion = MotionSpec(kind="sway", hints=((128, 96, 128, 46),), sway=SwaySpec(amplitude=2.0, angle=None))
        prepared = prepare(foliage, mask=None, motion=MotionSpec(), options=RenderOptions(frames=12, refine_mask=False),
                           regions=[Region(mask=_box(192, 256), motion=motion)])
        displacement = sway_displacement(prepared.sway, 3)
        assert not displacement[0].any() and np.abs(displacement[1]).max() > 1.0
        assert not prepared.motion_px.any()  # a sway's arrows give its direction, not a flow


class TestShimmer:
    def test_shimmer_on_a_flow(self, foliage: np.ndarray) -> None:
        """Water: a drift with a shimmer on top; frame 0 exact, nothing outside moves, the shimmer adds motion."""
        flow = MotionSpec(kind="drift", drift=(0.0, 0.5))
        shimmer = MotionSpec(kind="drift", drift=(0.0, 0.5), sway=SwaySpec(amplitude=1.5, cycles=2, shimmer=True,
                                                                          wavelength=10.0))
        plain, rippled = _sway_frames(foliage, SwaySpec(), 12, flow=flow), _sway_frames(foliage, SwaySpec(), 12,
                                                                                        flow=shimmer)
        assert np.array_equal(rippled[0], foliage)
        for frame in rippled:
            assert np.array_equal(frame[:30], foliage[:30]) and np.array_equal(frame[-30:], foliage[-30:])
        assert float(np.abs(rippled[3] - plain[3]).mean()) > 0.005

    def test_shimmer_directions_vary(self, foliage: np.ndarray) -> None:
        region = Region(mask=_box(192, 256), motion=MotionSpec(kind="sway", sway=SwaySpec(amplitude=1.0, shimmer=True)))
        prepared = prepare(foliage, mask=None, motion=MotionSpec(), options=RenderOptions(frames=12), regions=[region])
        layer = prepared.sway.layers[0]
        for wave in (layer.wave_cos[:, 40:-40, 40:-40], layer.wave_sin[:, 40:-40, 40:-40]):
            assert wave[0].min() < -0.5 and wave[0].max() > 0.5 and wave[1].min() < -0.5 and wave[1].max() > 0.5


    def test_shimmer_keeps_the_photos_sharpness(self, foliage: np.ndarray) -> None:
        """Ripples strain the surface, yet no frame gets sharper or dottier than the still: its detail stays.

        (Moved by whole pixels, detail tore along every line where neighbours' steps differ: up to 3.2x
        frame 0's sharpness and 1.85x its isolated dots on this photo.)
        """
        import cv2

        frames = _sway_frames(foliage, SwaySpec(amplitude=2.0, cycles=2, shimmer=True, wavelength=12.0), 12)
        inner = (slice(40, -40), slice(40, -40))

        def sharpness(frame: np.ndarray) -> float:
            return float(cv2.Laplacian(_gray(frame), cv2.CV_32F)[inner].var())

        def dots(frame: np.ndarray) -> float:
            luma = _gray(frame)
            median = cv2.medianBlur(np.clip(luma * 255, 0, 255).astype(np.uint8), 3).astype(np.float32) / 255
            return float((np.abs(luma - median) > 12 / 255)[inner].mean())

        ratios = [sharpness(frame) / sharpness(frames[0]) for frame in frames]
        assert SHARPNESS_RANGE[0] <= min(ratios) and max(ratios) <= SHARPNESS_RANGE[1], ratios
        assert max(dots(frame) for frame in frames[1:]) <= 1.1 * dots(frames[0])
        assert float(np.abs(frames[3] - frames[0])[inner].mean()) > 0.005  # and it does ripple

    @pytest.mark.parametrize("wavelength", [8.0, 12.0])
    def test_shimmer_ripples_at_its_wavelength(self, foliage: np.ndarray, wavelength: float) -> None:
        """The oscillation's power-weighted mean wavelength is the one asked for (within 25 %)."""
        region = Region(mask=_box(192, 256), motion=MotionSpec(kind="sway", sway=SwaySpec(
            amplitude=1.0, shimmer=True, wavelength=wavelength)))
        layer = prepare(foliage, mask=None, motion=MotionSpec(), options=RenderOptions(frames=12),
                        regions=[region]).sway.layers[0]
        assert not layer.moves_detail
        power = 0.0
        for wave in (layer.wave_cos, layer.wave_sin):
            for component in wave[:, 40:-40, 40:-40]:  # inside the edge's taper
                power = power + np.abs(np.fft.fft2(component - component.mean())) ** 2
        radius = np.hypot(np.fft.fftfreq(power.shape[0])[:, None], np.fft.fftfreq(power.shape[1])[None])
        measured = 1.0 / float((power * radius).sum() / power.sum())
        assert abs(measured - wavelength) <= 0.25 * wavelength, f"{measured:.1f} px"


class TestAmplitudeImage:
    def test_black_half_stays_exact_and_white_half_sways(self, foliage: np.ndarray, tmp_path: Path) -> None:
        """An amplitude image black on the left half: those pixels equal the input in every frame."""
        from stillflow.io.images import save_frame

        amplitude = np.zeros((96, 128, 3), np.float32)  # half the still's size: resized like a mask
        amplitude[:, 64:] = 1.0
        save_frame(tmp_path / "amplitude.png", amplitude, "png")
        spec = SwaySpec(amplitude=3.0, cycles=1, angle=0.0, amplitude_image=str(tmp_path / "amplitude.png"))
        frames = _sway_frames(foliage, spec, 12)
        for frame in frames:  # the 2x bilinear resize blends the black and white columns at x = 127, 128
            assert np.array_equal(frame[:, :127], foliage[:, :127])
        moved = max(float(np.abs(frame[:, 136:] - foliage[:, 136:]).mean()) for frame in frames)
        assert moved > 0.01, f"the white half barely moved ({moved:.4f})"
        plain = _sway_frames(foliage, SwaySpec(amplitude=3.0, cycles=1, angle=0.0), 12)
        # White is the spec's amplitude: the same frame as without the image, but for the base's blur,
        # which OpenCV computes over another crop (the window of what moves) and so rounds differently.
        np.testing.assert_allclose(frames[3][:, 160:-40], plain[3][:, 160:-40], rtol=0, atol=FLOAT32_ATOL)

    @pytest.mark.parametrize("name, shape, message", [
        ("missing.png", None, "amplitude image .*missing.png does not exist"),
        ("wide.png", (40, 128), "amplitude image is 128x40 px but the image is 256x192"),
        ("broken.png", (), "amplitude image .*broken.png"),
    ], ids=["missing", "aspect", "not-an-image"])
    def test_bad_amplitude_image(self, foliage: np.ndarray, tmp_path: Path, name: str,
                                 shape: tuple[int, ...] | None, message: str) -> None:
        from stillflow.errors import InputError
        from stillflow.io.images import save_frame

        path = tmp_path / name
        if shape == ():
            path.write_bytes(b"not a png")
        elif shape is not None:
            save_frame(path, np.ones((*shape, 3), np.float32), "png")
        spec = SwaySpec(amplitude=2.0, amplitude_image=str(path))
        with pytest.raises(InputError, match=message):
            _sway_frames(foliage, spec, 4)

    def test_the_output_may_not_replace_it(self, foliage: np.ndarray, tmp_path: Path) -> None:
        from stillflow import render
        from stillflow.errors import InputError
        from stillflow.io.images import save_frame

        save_frame(tmp_path / "amplitude.png", np.ones((192, 256, 3), np.float32), "png")
        spec = SwaySpec(amplitude=2.0, amplitude_image=str(tmp_path / "amplitude.png"))
        region = Region(mask=_box(192, 256), motion=MotionSpec(kind="sway", sway=spec))
        with pytest.raises(InputError, match="the output folder .* holds the region 1's amplitude image"):
            render(foliage, tmp_path, regions=[region], options=RenderOptions(frames=4))
