"""StyleGAN engine end to end with a small random generator saved and loaded through the real checkpoint path."""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from stillflow.errors import Cancelled, InputError, ModelMissing
from stillflow.gan.checkpoint import load_encoder, load_generator, load_mean_latent, save_weights
from stillflow.gan.encoder import EncoderConfig, FeatureStyleEncoder
from stillflow.gan.engine import load_models, render_frames_stylegan, square_crop
from stillflow.gan.invert import InversionSettings, invert_by_optimisation, invert_with_encoder
from stillflow.predictors.mask_net import PixelClassifier, feature_stack, predict_mask
from stillflow.gan.model import Generator, GeneratorConfig
from stillflow.predictors.motion_net import MotionGenerator, normalise_flow, predict_motion
from stillflow.gan.msdfw import LoopWarper
from stillflow.options import RenderOptions
from stillflow.progress import Progress

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
SMALL = GeneratorConfig(size=64, style_dim=32, n_mlp=2, channels=((4, 32), (8, 32), (16, 16), (32, 16), (64, 8)))
FAST = InversionSettings(steps=30)
QUICK = InversionSettings(steps=5)


def _small_generator(seed: int = 0) -> Generator:
    """A 64 px generator with few channels and seeded random weights."""
    torch.manual_seed(seed)
    return Generator(SMALL).eval().requires_grad_(False)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder holding the small generator as a rosinality training checkpoint."""
    root = tmp_path_factory.mktemp("models")
    (root / "stylegan2").mkdir()
    generator = _small_generator()
    torch.save({"g_ema": generator.state_dict(), "args": argparse.Namespace(size=64)},
               root / "stylegan2" / "sg2-lhq-1024.pt")
    save_weights({"mean": generator.mean_latent()[0]}, root / "stylegan2" / "sg2-lhq-1024-mean.safetensors")
    return root


@pytest.fixture(scope="module")
def generator(models_dir: Path) -> Generator:
    return load_generator(models_dir / "stylegan2" / "sg2-lhq-1024.pt")


def _photo(side: int) -> torch.Tensor:
    """A real landscape photo from ../shared/data as (1, 3, side, side) in [0, 1]."""
    path = DATA / "stills" / "scg-0000008.png"
    if not path.is_file():
        pytest.skip("shared test data not available")
    from stillflow._cv import cv2

    rgb = cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1]
    small = cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return torch.from_numpy(small.transpose(2, 0, 1).copy())[None]


def _inverted(generator: Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A random (w+, D2) pair of the small generator."""
    gen = torch.Generator().manual_seed(1)
    w = generator.map_styles(torch.randn(1, SMALL.style_dim, generator=gen))[:, None].repeat(1, generator.n_latent, 1)
    return w, generator.feature_at(w, 2)


class TestLoadGenerator:
    def test_round_trip_keeps_synthesis(self, generator: Generator, tmp_path: Path) -> None:
        original = _small_generator()
        w, _ = _inverted(original)
        assert torch.equal(generator.synthesize(w), original.synthesize(w))
        flat = save_weights({f"g_ema.{k}": v for k, v in original.state_dict().items()}, tmp_path / "g.safetensors")
        assert torch.equal(load_generator(flat).synthesize(w), original.synthesize(w))

    def test_wrong_layout_is_refused(self, tmp_path: Path) -> None:
        state = _small_generator().state_dict()
        state["convs.3.conv.weight"] = torch.zeros(1, 2, 2, 3, 3)
        torch.save({"g_ema": state}, tmp_path / "bad.pt")
        with pytest.raises(InputError, match="bad.pt does not match the StyleGAN2 64 px generator layout"):
            load_generator(tmp_path / "bad.pt")

    def test_not_a_generator(self, tmp_path: Path) -> None:
        torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pt")
        with pytest.raises(InputError, match="not a StyleGAN2 generator in the rosinality layout"):
            load_generator(tmp_path / "other.pt")

    def test_mean_latent_file(self, models_dir: Path, generator: Generator) -> None:
        mean = load_mean_latent(models_dir / "stylegan2" / "sg2-lhq-1024-mean.safetensors", 32)
        assert torch.equal(mean, generator.mean_latent())
        with pytest.raises(InputError, match="not a mean-w file: expected one tensor of 512 values"):
            load_mean_latent(models_dir / "stylegan2" / "sg2-lhq-1024-mean.safetensors", 512)


class TestWarpedSynthesis:
    def test_zero_motion_reproduces_synthesis(self, generator: Generator) -> None:
        w, feature = _inverted(generator)
        levels = generator.level_features(w, feature, 2)
        assert [lvl.shape[-1] for lvl in levels] == [8, 16, 32, 64]
        plain = generator.synthesize_from_feature(w, feature, 2)
        warper = LoopWarper(torch.zeros(2, 64, 64), 6, [8, 16, 32, 64])
        assert torch.equal(generator.render_levels(levels, w, 2, warp=warper.frame(0)), plain)
        for t in range(1, 6):
            torch.testing.assert_close(generator.render_levels(levels, w, 2, warp=warper.frame(t)), plain,
                                       rtol=1e-4, atol=1e-5)

    def test_loop_closes_and_moves(self, generator: Generator) -> None:
        w, feature = _inverted(generator)
        levels = generator.level_features(w, feature, 2)
        motion = torch.zeros(2, 64, 64)
        motion[0, 16:48, 16:48] = 1.5
        warper = LoopWarper(motion, 8, [8, 16, 32, 64])
        frame = [generator.render_levels(levels, w, 2, warp=warper.frame(t)) for t in (0, 4, 8)]
        assert torch.equal(frame[0], generator.synthesize_from_feature(w, feature, 2))
        assert torch.equal(frame[2], frame[0])
        assert float((frame[1] - frame[0]).abs().max()) > 0.05

    def test_odd_feature_index_is_refused(self, generator: Generator) -> None:
        with pytest.raises(ValueError, match="feature index 3 not supported"):
            generator.check_feature_index(3)


class TestInversion:
    def test_optimisation_lowers_reconstruction_error(self, generator: Generator) -> None:
        photo = _photo(64)
        reports: list[Progress] = []
        result = invert_by_optimisation(generator, generator.mean_latent(), photo, 2, FAST, progress=reports.append)
        start = generator.synthesize_from_feature(generator.mean_latent()[:, None].repeat(1, 10, 1),
                                                  generator.feature_at(generator.mean_latent()[:, None]
                                                                       .repeat(1, 10, 1), 2), 2)
        target = photo * 2 - 1
        after = generator.synthesize_from_feature(result.w_plus, result.feature, 2)
        assert float((after - target).abs().mean()) < 0.5 * float((start - target).abs().mean())
        assert [(r.stage, r.done, r.total) for r in reports] == [("invert", i, 30) for i in range(1, 31)]

    def test_finetune_lowers_it_further(self, generator: Generator) -> None:
        photo = _photo(64)
        settings = replace(FAST, steps=10, finetune_steps=10)
        result = invert_by_optimisation(generator, generator.mean_latent(), photo, 2, settings)
        assert len(result.losses) == 20 and result.generator is not generator
        assert result.losses[-1] < result.losses[9]

    def test_cancel_between_steps(self, generator: Generator) -> None:
        with pytest.raises(Cancelled, match="inversion cancelled"):
            invert_by_optimisation(generator, generator.mean_latent(), torch.rand(1, 3, 64, 64), 2, FAST,
                                   should_cancel=lambda: True)

    def test_encoder_through_checkpoint(self, generator: Generator, tmp_path: Path) -> None:
        torch.manual_seed(2)
        config = EncoderConfig(layers=(1, 1, 2, 1), widths=(8, 8, 16, 16), n_styles=10, style_dim=32,
                               content_hidden=16, feature_channels=32)
        save_weights(FeatureStyleEncoder(config).eval().state_dict(), tmp_path / "enc.pth.tar")
        encoder = load_encoder(tmp_path / "enc.pth.tar")
        assert encoder.config == config
        result = invert_with_encoder(encoder, generator, generator.mean_latent(), torch.rand(1, 3, 64, 64), 2)
        assert result.w_plus.shape == (1, 10, 32) and result.feature.shape == (1, 32, 8, 8)
        with pytest.raises(InputError, match="the encoder predicts w\\+ \\(10, 32\\) .* needs \\(10, 32\\) and \\(16, 16, 16\\)"):
            invert_with_encoder(encoder, generator, generator.mean_latent(), torch.rand(1, 3, 64, 64), 4)


class TestRenderFramesStylegan:
    def _scene(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A 48 x 80 image (4 channels), a mask inside the right part, rightward motion in it."""
        rng = np.random.default_rng(0)
        image = rng.random((48, 80, 4), dtype=np.float32)
        mask = np.zeros((48, 80), np.float32)
        mask[8:40, 40:76] = 1.0
        mask[8:40, 38:40] = 0.5
        motion = np.zeros((2, 48, 80), np.float32)
        motion[0] = 0.8 * (mask > 0)
        return image, mask, motion

    def test_static_pixels_bit_exact_and_loop(self, models_dir: Path) -> None:
        image, mask, motion = self._scene()
        options = RenderOptions(frames=6, models=str(models_dir))
        reports: list[Progress] = []
        frames = list(render_frames_stylegan(image, mask, motion, options, reports.append, lambda: False,
                                             settings=QUICK))
        assert len(frames) == 6 and all(f.shape == image.shape and f.dtype == np.float32 for f in frames)
        assert np.array_equal(frames[0], image)
        for frame in frames:
            assert np.array_equal(frame[mask == 0], image[mask == 0])
            assert np.array_equal(frame[:, :, 3], image[:, :, 3])
        assert max(float(np.abs(f - image)[mask > 0].max()) for f in frames[1:]) > 0.05
        assert [r.done for r in reports if r.stage == "invert"] == list(range(1, QUICK.steps + 1))
        assert not [r for r in reports if r.stage == "render"], "per-frame progress is the caller's (no duplicates)"

    def test_paper_mode_shows_the_gan_output(self, models_dir: Path) -> None:
        image, mask, motion = self._scene()
        options = RenderOptions(frames=2, models=str(models_dir))
        frame0 = next(iter(render_frames_stylegan(image, mask, motion, options, use_detail=False, settings=QUICK)))
        assert np.array_equal(frame0[mask == 0], image[mask == 0])
        assert not np.array_equal(frame0[mask == 1], image[mask == 1])

    def test_zero_motion_gives_the_input(self, models_dir: Path) -> None:
        image, mask, motion = self._scene()
        options = RenderOptions(frames=3, models=str(models_dir))
        frames = list(render_frames_stylegan(image, mask, motion * 0, options))
        assert all(np.array_equal(f, image) for f in frames)

    def test_square_crop_follows_the_mask(self) -> None:
        _, mask, _ = self._scene()
        assert square_crop(mask) == (0, 32, 48)

    def test_without_models_folder(self) -> None:
        image, mask, motion = self._scene()
        with pytest.raises(ModelMissing, match="the stylegan engine needs model weights .*--models DIR"):
            next(iter(render_frames_stylegan(image, mask, motion, RenderOptions(frames=2))))

    def test_generator_missing_names_the_file(self, tmp_path: Path) -> None:
        image, mask, motion = self._scene()
        with pytest.raises(ModelMissing, match="expected .*stylegan2/sg2-lhq-1024.pt"):
            next(iter(render_frames_stylegan(image, mask, motion, RenderOptions(frames=2, models=str(tmp_path)))))


class TestLearnedMotionAndMask:
    def test_predict_motion_with_saved_model(self, tmp_path: Path) -> None:
        torch.manual_seed(3)
        save_weights(MotionGenerator(ngf=4, n_down=2, n_blocks=1).state_dict(),
                     tmp_path / "img2flow_fluid" / "latest_net_G.pth")
        image = np.random.default_rng(1).random((40, 60, 3), dtype=np.float32)
        flow = predict_motion(image, tmp_path, "fluid")
        assert flow.shape == (2, 40, 60) and flow.dtype == np.float32 and np.isfinite(flow).all()
        speed_512 = np.hypot(flow[0] * 512 / 60, flow[1] * 512 / 40)
        assert 0.5 < float(speed_512.max()) <= 1.05
        with pytest.raises(ModelMissing, match="--motion auto \\(sky\\) needs .*img2flow_sky/latest_net_G.pth"):
            predict_motion(image, tmp_path, "sky+fluid")

    def test_sky_normalisation(self) -> None:
        raw = np.zeros((2, 8, 8), np.float32)
        raw[0, :4] = 2.0
        raw[0, 4:] = 4.0
        out = normalise_flow(raw, "sky")
        assert np.allclose(out[0, 4:], 1.0 * 3.0 / 3.0) and np.allclose(out[0, :4], 0.5)

    def test_predict_mask_with_saved_classifiers(self, models_dir: Path, generator: Generator,
                                                 tmp_path: Path) -> None:
        w, feature = _inverted(generator)
        channels = sum(f.shape[1] for f in feature_stack(generator, w, feature, 2))
        assert channels == 32 + 32 + 32 + 16 + 16 + 16 + 16 + 8 + 8
        folder = tmp_path / "models"
        (folder / "stylegan2").mkdir(parents=True)
        for name in ("sg2-lhq-1024.pt", "sg2-lhq-1024-mean.safetensors"):
            (folder / "stylegan2" / name).write_bytes((models_dir / "stylegan2" / name).read_bytes())
        (folder / "datasetgan").mkdir()
        for i in range(10):
            torch.manual_seed(10 + i)
            net = PixelClassifier(channels).eval()
            torch.save({"model_state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}},
                       folder / "datasetgan" / f"best_model_number_{i}.pth")
        mask = predict_mask(np.random.default_rng(2).random((64, 64, 3), dtype=np.float32), folder,
                            settings=InversionSettings(steps=3), min_mask_frac=0.0)
        assert mask.shape == (64, 64) and set(np.unique(mask)) <= {0.0, 1.0}
        with pytest.raises(ModelMissing, match="--mask auto needs .*best_model_number_0.pth"):
            predict_mask(np.zeros((64, 64, 3), np.float32), models_dir)


def test_load_models_estimates_mean_without_file(models_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "stylegan2").mkdir()
    (tmp_path / "stylegan2" / "sg2-lhq-1024.pt").write_bytes((models_dir / "stylegan2" / "sg2-lhq-1024.pt").read_bytes())
    models = load_models(str(tmp_path), torch.device("cpu"))
    assert models.encoder is None and torch.equal(models.mean_w, models.generator.mean_latent())
