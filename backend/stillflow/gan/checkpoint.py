"""Reading weight files safely and mapping their keys onto our modules (algorithm.md §7).

Only ``torch.load(weights_only=True)`` and safetensors are used: a file that would need
arbitrary unpickling is refused. Architectures are inferred from tensor shapes, so the
published 1024 px files and small test models go through the same code.
"""
from __future__ import annotations

import argparse
import logging
import math
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import InputError
from .encoder import EncoderConfig, FeatureStyleEncoder
from .model import Generator, GeneratorConfig

__all__ = ["read_weights", "save_weights", "generator_state", "generator_config", "load_generator",
           "load_mean_latent", "encoder_config", "load_encoder", "strip_prefix", "load_into"]

log = logging.getLogger(__name__)

# rosinality training checkpoints carry their argparse options next to the weights
_SAFE_GLOBALS = [argparse.Namespace]


def read_weights(path: str | Path) -> Any:
    """Tensors of a .safetensors file, or a torch checkpoint read with ``weights_only=True``.

    Raises:
        InputError: the file is unreadable, not a checkpoint, or would need arbitrary unpickling.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own SafetensorError; report any read failure
            raise InputError(f"cannot read safetensors file {path}: {str(exc).splitlines()[0]}",
                             hint="check that the download is complete") from None
    try:
        with torch.serialization.safe_globals(_SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = next((line.strip() for line in str(exc).splitlines() if "GLOBAL" in line or "Unsupported" in line),
                      "it contains Python objects other than tensors")
        raise InputError(f"refused to load {path}: it needs arbitrary unpickling ({detail})",
                         hint="convert it to .safetensors on a machine you trust (docs/stylegan.md)") from None
    except (RuntimeError, EOFError, OSError, ValueError, IndexError, KeyError, TypeError) as exc:
        # a corrupt or foreign file makes the weights-only unpickler fail in many ways
        raise InputError(f"cannot read weights file {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                         hint="check that the file is a complete PyTorch or safetensors checkpoint") from None


def save_weights(state: dict[str, torch.Tensor], path: str | Path) -> Path:
    """Write a flat tensor dict as .safetensors (by suffix) or a torch file; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return path


def strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Keys without ``prefix`` where every key has it (DataParallel ``module.``), else unchanged."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return state


def _tensor_dict(obj: Any, path: Path, what: str) -> dict[str, torch.Tensor]:
    """``obj`` as a flat str -> tensor dict, or InputError naming what was expected."""
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj)
    raise InputError(f"{path} does not hold a {what} state dict", hint="see docs/stylegan.md for the expected files")


def generator_state(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The g_ema state dict of a rosinality checkpoint, a flat ``g_ema.*`` file or a bare state dict."""
    if isinstance(obj, dict) and isinstance(obj.get("g_ema"), dict):
        return _tensor_dict(obj["g_ema"], path, "g_ema")
    if isinstance(obj, dict) and any(str(k).startswith("g_ema.") for k in obj):
        return _tensor_dict({k[6:]: v for k, v in obj.items() if k.startswith("g_ema.")}, path, "g_ema")
    return _tensor_dict(obj, path, "StyleGAN2 generator")


def _indices(state: dict[str, torch.Tensor], pattern: str) -> list[int]:
    """Sorted distinct integers captured by ``pattern`` over the keys."""
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for k in state if (m := regex.match(k))})


def generator_config(state: dict[str, torch.Tensor], path: Path) -> GeneratorConfig:
    """Size, latent width, mapping depth and channels read from the tensor shapes."""
    try:
        n_rgbs = len(_indices(state, r"to_rgbs\.(\d+)\."))
        channels = {4: int(state["input.input"].shape[1])}
        for m in range(n_rgbs):
            channels[2 ** (m + 3)] = int(state[f"convs.{2 * m}.conv.weight"].shape[1])
        return GeneratorConfig(size=2 ** (n_rgbs + 2), style_dim=int(state["style.1.weight"].shape[1]),
                               n_mlp=len(_indices(state, r"style\.(\d+)\.weight")),
                               channels=tuple(channels.items()))
    except (KeyError, IndexError) as exc:
        raise InputError(f"{path} is not a StyleGAN2 generator in the rosinality layout (no key {exc})",
                         hint="expected a checkpoint with g_ema (docs/stylegan.md)") from None


def load_into(module: nn.Module, state: dict[str, torch.Tensor], path: Path, what: str) -> nn.Module:
    """Load ``state`` strictly into a meta-device ``module`` (tensors assigned, float32, CPU)."""
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    try:
        module.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise InputError(f"{path} does not match the {what} layout: {lines[1] if len(lines) > 1 else lines[0]}",
                         hint="use the published file named in docs/stylegan.md") from None
    return module.eval().requires_grad_(False)


def load_generator(path: str | Path, device: torch.device | str = "cpu") -> Generator:
    """Read a StyleGAN2 checkpoint into a Generator on ``device`` (eval mode, no grad)."""
    path = Path(path)
    state = generator_state(read_weights(path), path)
    config = generator_config(state, path)
    with torch.device("meta"):
        generator = Generator(config)
    load_into(generator, state, path, f"StyleGAN2 {config.size} px generator")
    log.info("loaded %d px generator from %s", config.size, path)
    return generator.to(device)


def load_mean_latent(path: str | Path, style_dim: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The mean w of a mean-latent file (a tensor, or a dict holding one): (1, style_dim) float32."""
    path = Path(path)
    obj = read_weights(path)
    if isinstance(obj, dict):
        tensors = [v for v in obj.values() if isinstance(v, torch.Tensor)]
        obj = tensors[0] if len(tensors) == 1 else None
    if not isinstance(obj, torch.Tensor) or obj.numel() != style_dim:
        raise InputError(f"{path} is not a mean-w file: expected one tensor of {style_dim} values",
                         hint="use sg2-lhq-1024-mean.pt from the same release as the generator")
    return obj.float().reshape(1, style_dim).to(device)


def encoder_config(state: dict[str, torch.Tensor], path: Path) -> EncoderConfig:
    """Backbone depth/widths, heads and content-head widths read from the tensor shapes."""
    try:
        layers = tuple(len(_indices(state, rf"block_{n}\.(\d+)\.")) for n in range(1, 5))
        widths = tuple(int(state[f"block_{n}.0.conv1.weight"].shape[0]) for n in range(1, 5))
        styles = _indices(state, r"styles\.(\d+)\.weight")
        pooled_side = math.isqrt(int(state["styles.0.weight"].shape[1]) // sum(widths))
        return EncoderConfig(layers=layers, widths=widths, n_styles=len(styles),  # type: ignore[arg-type]
                             style_dim=int(state["styles.0.weight"].shape[0]),
                             content_hidden=int(state["content_layer.1.weight"].shape[0]),
                             feature_channels=int(state["content_layer.4.weight"].shape[0]), pool=pooled_side)
    except (KeyError, IndexError) as exc:
        raise InputError(f"{path} is not a Feature-Style encoder state dict (no key {exc})",
                         hint="expected enc.pth.tar from the StyleCineGAN release (docs/stylegan.md)") from None


def load_encoder(path: str | Path, device: torch.device | str = "cpu") -> FeatureStyleEncoder:
    """Read a Feature-Style encoder state dict (plain, ``state_dict``-wrapped or DataParallel)."""
    path = Path(path)
    obj = read_weights(path)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    state = strip_prefix(_tensor_dict(obj, path, "encoder"), "module.")
    config = encoder_config(state, path)
    with torch.device("meta"):
        encoder = FeatureStyleEncoder(config)
    load_into(encoder, state, path, "Feature-Style encoder")
    log.info("loaded encoder from %s", path)
    return encoder.to(device)
