"""Full-size parameter layouts (meta device), safe checkpoint reading, models folder and `models check`."""
from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest
import torch

from stillflow.errors import InputError, ModelMissing
from stillflow.gan.checkpoint import encoder_config, generator_config, read_weights
from stillflow.gan.commands import add_parsers
from stillflow.gan.encoder import FeatureStyleEncoder
from stillflow.gan.model import Generator
from stillflow.gan.models_dir import describe_models, require_model
from stillflow.predictors.motion_net import MotionGenerator, _architecture


def _shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a module's state dict."""
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _modulated(prefix: str, out_ch: int, in_ch: int, k: int, dim: int = 512) -> dict[str, tuple[int, ...]]:
    """Keys of one modulated conv (algorithm.md §7)."""
    return {f"{prefix}.weight": (1, out_ch, in_ch, k, k), f"{prefix}.modulation.weight": (in_ch, dim),
            f"{prefix}.modulation.bias": (in_ch,)}


def _expected_generator_1024() -> dict[str, tuple[int, ...]]:
    """g_ema keys and shapes of Generator(1024, 512, 8, channel_multiplier=2), written from algorithm.md §5.1/§7."""
    ch = {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64, 1024: 32}
    keys: dict[str, tuple[int, ...]] = {}
    for i in range(1, 9):
        keys[f"style.{i}.weight"] = (512, 512)
        keys[f"style.{i}.bias"] = (512,)
    keys["input.input"] = (1, 512, 4, 4)
    keys.update(_modulated("conv1.conv", 512, 512, 3))
    keys["conv1.noise.weight"] = (1,)
    keys["conv1.activate.bias"] = (512,)
    keys.update(_modulated("to_rgb1.conv", 3, 512, 1))
    keys["to_rgb1.bias"] = (1, 3, 1, 1)
    in_ch = 512
    for m, res in enumerate([8, 16, 32, 64, 128, 256, 512, 1024]):
        for j, (cin, cout) in enumerate([(in_ch, ch[res]), (ch[res], ch[res])]):
            idx = 2 * m + j
            keys.update(_modulated(f"convs.{idx}.conv", cout, cin, 3))
            if j == 0:
                keys[f"convs.{idx}.conv.blur.kernel"] = (4, 4)
            keys[f"convs.{idx}.noise.weight"] = (1,)
            keys[f"convs.{idx}.activate.bias"] = (cout,)
        keys.update(_modulated(f"to_rgbs.{m}.conv", 3, ch[res], 1))
        keys[f"to_rgbs.{m}.upsample.kernel"] = (4, 4)
        keys[f"to_rgbs.{m}.bias"] = (1, 3, 1, 1)
        in_ch = ch[res]
    for idx in range(17):
        side = 2 ** ((idx + 5) // 2)
        keys[f"noises.noise_{idx}"] = (1, 1, side, side)
    return keys


def _bn(prefix: str, ch: int) -> dict[str, tuple[int, ...]]:
    """Keys of one BatchNorm2d."""
    return {f"{prefix}.weight": (ch,), f"{prefix}.bias": (ch,), f"{prefix}.running_mean": (ch,),
            f"{prefix}.running_var": (ch,), f"{prefix}.num_batches_tracked": ()}


def _expected_encoder() -> dict[str, tuple[int, ...]]:
    """fs_encoder_v2 (k = 10) keys: iResNet-50 stem and stages, 18 style heads, content head (algorithm.md §7)."""
    keys: dict[str, tuple[int, ...]] = {"conv.0.weight": (64, 3, 3, 3), **_bn("conv.1", 64), "conv.2.weight": (64,)}
    in_ch = 64
    for n, (blocks, width) in enumerate(zip((3, 4, 14, 3), (64, 128, 256, 512)), start=1):
        for b in range(blocks):
            p = f"block_{n}.{b}"
            cin = in_ch if b == 0 else width
            keys.update(_bn(f"{p}.bn1", cin))
            keys[f"{p}.conv1.weight"] = (width, cin, 3, 3)
            keys.update(_bn(f"{p}.bn2", width))
            keys[f"{p}.prelu.weight"] = (width,)
            keys[f"{p}.conv2.weight"] = (width, width, 3, 3)
            keys.update(_bn(f"{p}.bn3", width))
            if b == 0:
                keys[f"{p}.downsample.0.weight"] = (width, cin, 1, 1)
                keys.update(_bn(f"{p}.downsample.1", width))
        in_ch = width
    for i in range(18):
        keys[f"styles.{i}.weight"] = (512, 8640)
        keys[f"styles.{i}.bias"] = (512,)
    keys.update(_bn("content_layer.0", 64))
    keys["content_layer.1.weight"] = (512, 64, 3, 3)
    keys.update(_bn("content_layer.2", 512))
    keys["content_layer.3.weight"] = (512,)
    keys["content_layer.4.weight"] = (256, 512, 3, 3)
    keys.update(_bn("content_layer.5", 256))
    return keys


class TestFullSizeLayout:
    def test_generator_1024_matches_rosinality_layout(self) -> None:
        with torch.device("meta"):
            generator = Generator()
        assert _shapes(generator) == _expected_generator_1024()
        assert generator.n_latent == 18 and generator.default_feature_index() == 10
        assert generator.feature_resolution(10) == 128 and generator.config.channel(128) == 256

    def test_generator_config_is_read_back_from_shapes(self) -> None:
        with torch.device("meta"):
            state = Generator().state_dict()
        config = generator_config(state, Path("g.pt"))
        assert (config.size, config.style_dim, config.n_mlp, config.channel(1024)) == (1024, 512, 8, 32)

    def test_encoder_matches_fs_encoder_v2_layout(self) -> None:
        with torch.device("meta"):
            encoder = FeatureStyleEncoder()
        assert _shapes(encoder) == _expected_encoder()
        assert encoder_config(encoder.state_dict(), Path("e.pt")) == encoder.config

    def test_motion_generator_layout(self) -> None:
        with torch.device("meta"):
            net = MotionGenerator()
        shapes = _shapes(net)
        assert shapes["model.1.weight"] == (64, 3, 7, 7)
        assert [shapes[f"model.{i}.weight"] for i in (4, 7, 10, 13)] == [
            (128, 64, 3, 3), (256, 128, 3, 3), (512, 256, 3, 3), (1024, 512, 3, 3)]
        assert all(shapes[f"model.{i}.conv_block.{c}.weight"] == (1024, 1024, 3, 3)
                   for i in range(16, 25) for c in (1, 5))
        assert [shapes[f"model.{i}.weight"] for i in (26, 30, 34, 38)] == [
            (512, 1024, 3, 3), (256, 512, 3, 3), (128, 256, 3, 3), (64, 128, 3, 3)]
        assert shapes["model.42.weight"] == (2, 64, 7, 7)
        assert _architecture(net.state_dict(), Path("m.pth")) == (64, 4, 9, False)


class _Payload:
    """A class a weights-only load must refuse to rebuild."""


class TestReadWeights:
    def test_refuses_arbitrary_pickle(self, tmp_path: Path) -> None:
        path = tmp_path / "evil.pt"
        torch.save({"g_ema": {"w": torch.zeros(1)}, "extra": _Payload()}, path)
        with pytest.raises(InputError, match="refused to load .*evil.pt.*arbitrary unpickling"):
            read_weights(path)

    def test_accepts_argparse_namespace_of_training_checkpoints(self, tmp_path: Path) -> None:
        path = tmp_path / "ckpt.pt"
        torch.save({"g_ema": {"w": torch.ones(2)}, "args": argparse.Namespace(size=64)}, path)
        assert torch.equal(read_weights(path)["g_ema"]["w"], torch.ones(2))

    def test_not_a_checkpoint(self, tmp_path: Path) -> None:
        path = tmp_path / "junk.pt"
        path.write_bytes(b"this is not a checkpoint")
        with pytest.raises(InputError, match="junk.pt"):
            read_weights(path)

    def test_broken_safetensors(self, tmp_path: Path) -> None:
        path = tmp_path / "broken.safetensors"
        path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
        with pytest.raises(InputError, match="cannot read safetensors file .*broken.safetensors"):
            read_weights(path)


class TestModelsFolder:
    def test_no_folder_names_the_option(self) -> None:
        with pytest.raises(ModelMissing, match="no models folder was given; pass --models DIR"):
            require_model(None, "generator", "the stylegan engine")

    def test_missing_folder(self, tmp_path: Path) -> None:
        with pytest.raises(ModelMissing, match="models folder .*nowhere does not exist"):
            require_model(tmp_path / "nowhere", "generator", "the stylegan engine")

    def test_missing_file_names_path_and_source(self, tmp_path: Path) -> None:
        with pytest.raises(ModelMissing, match=r"expected .*stylegan2/sg2-lhq-1024\.pt \(or sg2-lhq-1024\."
                                               r"safetensors\); where to get it: the StyleCineGAN release"):
            require_model(tmp_path, "generator", "the stylegan engine")

    def test_safetensors_twin_is_found(self, tmp_path: Path) -> None:
        (tmp_path / "encoder").mkdir()
        (tmp_path / "encoder" / "enc.safetensors").write_bytes(b"")
        assert require_model(tmp_path, "encoder", "x") == tmp_path / "encoder" / "enc.safetensors"

    def test_describe_lists_present_missing_and_option_needs(self, tmp_path: Path) -> None:
        (tmp_path / "stylegan2").mkdir()
        (tmp_path / "stylegan2" / "sg2-lhq-1024.pt").write_bytes(b"")
        (tmp_path / "img2flow_sky").mkdir()
        (tmp_path / "img2flow_sky" / "latest_net_G.pth").write_bytes(b"")
        info = describe_models(tmp_path)
        json.dumps(info)  # plain values only: the service sends it in hello
        assert info["files"]["generator"]["present"] and not info["files"]["encoder"]["present"]
        assert info["options"]["engine stylegan"] == {"available": True, "missing": [],
                                                      "optional_missing": ["mean_latent", "encoder"],
                                                      "mode": "optimisation"}
        assert info["options"]["motion auto sky"]["available"]
        assert info["options"]["motion auto fluid"]["missing"] == ["flow_fluid"]
        assert not info["options"]["mask auto"]["available"]

    def test_describe_without_folder(self) -> None:
        info = describe_models(None)
        assert info["exists"] is False and not any(f["present"] for f in info["files"].values())


class TestModelsCheckCommand:
    def _parse(self, argv: list[str]) -> argparse.Namespace:
        parser = argparse.ArgumentParser(prog="stillflow")
        add_parsers(parser.add_subparsers(dest="command"))
        return parser.parse_args(argv)

    def test_text_report(self, tmp_path: Path) -> None:
        (tmp_path / "stylegan2").mkdir()
        (tmp_path / "stylegan2" / "sg2-lhq-1024.safetensors").write_bytes(b"")
        args = self._parse(["models", "check", str(tmp_path)])
        out = io.StringIO()
        assert args.func(args, out) == 0
        text = out.getvalue()
        assert "[x] generator" in text and "[ ] encoder" in text
        assert "engine stylegan    available (inversion by optimisation)" in text
        assert "motion auto fluid  unavailable, missing flow_fluid" in text

    def test_json_report(self, tmp_path: Path) -> None:
        args = self._parse(["models", "check", str(tmp_path), "--json"])
        out = io.StringIO()
        assert args.func(args, out) == 0
        assert json.loads(out.getvalue())["options"]["engine stylegan"]["missing"] == ["generator"]

    def test_missing_folder_is_an_error(self, tmp_path: Path) -> None:
        args = self._parse(["models", "check", str(tmp_path / "absent")])
        with pytest.raises(ModelMissing, match="absent does not exist"):
            args.func(args, io.StringIO())
