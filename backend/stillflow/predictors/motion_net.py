"""Learned motion for ``--motion auto``: a pix2pixHD-style global generator, image -> flow at 512 px.

Layout as in algorithm.md §7 (``model.<idx>.*`` keys): 7x7 conv, four stride-2 downsamplings
(64 -> 1024 channels), nine residual blocks, four bilinear x2 + 3x3 conv upsamplings and a
final 7x7 conv to two channels, no tanh; instance norm without affine, ReLU, reflection
padding. The up-step layout is read from the file (with or without a reflection pad before
the 3x3 conv) because the weights were never published and the exact module list is unknown.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..stages.motion import resize_motion
from ..gan.checkpoint import load_into, read_weights, strip_prefix
from ..gan.models_dir import require_model

__all__ = ["MotionGenerator", "load_motion_generator", "predict_motion", "normalise_flow", "zscore_filter",
           "MOTION_MODES", "FLOW_SIDE"]

log = logging.getLogger(__name__)

FLOW_SIDE = 512
"""The motion generator works at 512 x 512 px; its output is px/frame at that size."""

MOTION_MODES = ("sky", "fluid", "sky+fluid")


class ResnetBlock(nn.Module):
    """Two reflection-padded 3x3 convs with instance norm, added to the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> same."""
        return x + self.conv_block(x)


def _up_step(in_channels: int, out_channels: int, padded: bool) -> list[nn.Module]:
    """Bilinear x2 (align_corners) then a 3x3 conv, instance norm, ReLU."""
    up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
    if padded:
        return [up, nn.ReflectionPad2d(1), nn.Conv2d(in_channels, out_channels, 3), nn.InstanceNorm2d(out_channels),
                nn.ReLU(True)]
    return [up, nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.InstanceNorm2d(out_channels), nn.ReLU(True)]


class MotionGenerator(nn.Module):
    """pix2pixHD global generator: RGB (B, 3, H, W) in [-1, 1] -> flow (B, 2, H, W) px/frame at H."""

    def __init__(self, ngf: int = 64, n_down: int = 4, n_blocks: int = 9, *, padded_up: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        for i in range(n_down):
            width = ngf * 2 ** i
            layers += [nn.Conv2d(width, width * 2, 3, stride=2, padding=1), nn.InstanceNorm2d(width * 2), nn.ReLU(True)]
        deepest = ngf * 2 ** n_down
        layers += [ResnetBlock(deepest) for _ in range(n_blocks)]
        for i in range(n_down):
            width = deepest // 2 ** i
            layers += _up_step(width, width // 2, padded_up)
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 2, 7)]
        self.model = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 2, H, W); H and W multiples of 2^n_down."""
        return self.model(image)


def _architecture(state: dict[str, torch.Tensor], path: Path) -> tuple[int, int, int, bool]:
    """(ngf, n_down, n_blocks, padded_up) read from the keys and shapes of a saved generator."""
    try:
        ngf = int(state["model.1.weight"].shape[0])
        blocks = sorted({int(m.group(1)) for k in state if (m := re.match(r"model\.(\d+)\.conv_block\.", k))})
        n_down = (blocks[0] - 4) // 3
        up_convs = sorted({int(m.group(1)) for k in state if (m := re.match(r"model\.(\d+)\.weight", k))
                           and int(m.group(1)) > blocks[-1]})
        padded_up = len(up_convs) > 2 and up_convs[1] - up_convs[0] == 5
        return ngf, n_down, len(blocks), padded_up
    except (KeyError, IndexError):
        raise InputError(f"{path} is not a pix2pixHD global generator (model.<idx>.* keys)",
                         hint="expected latest_net_G.pth of the img2flow model (docs/stylegan.md)") from None


def load_motion_generator(path: str | Path, device: torch.device | str = "cpu") -> MotionGenerator:
    """Read a motion generator state dict (``netG.state_dict()``, optionally DataParallel-wrapped)."""
    path = Path(path)
    obj = read_weights(path)
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"{path} does not hold a motion generator state dict", hint="see docs/stylegan.md")
    state = strip_prefix(dict(obj), "module.")
    ngf, n_down, n_blocks, padded_up = _architecture(state, path)
    with torch.device("meta"):
        net = MotionGenerator(ngf, n_down, n_blocks, padded_up=padded_up)
    load_into(net, state, path, "pix2pixHD motion generator")
    return net.to(device)


def zscore_filter(flow: np.ndarray, limit: float = 3.0) -> np.ndarray:
    """Zero the vectors whose speed is more than ``limit`` standard deviations from the mean speed.

    Args:
        flow: (2, H, W) float32; statistics over the nonzero vectors (algorithm.md §1.2 step 1).
    """
    speed = np.hypot(flow[0], flow[1])
    moving = speed > 0
    if moving.sum() < 2:
        return flow
    mean, std = speed[moving].mean(), speed[moving].std()
    if std == 0:
        return flow
    out = flow.copy()
    out[:, moving & (np.abs(speed - mean) / std > limit)] = 0.0
    return out


def normalise_flow(raw: np.ndarray, kind: Literal["sky", "fluid"]) -> np.ndarray:
    """Normalise a predicted (2, 512, 512) flow as the StyleCineGAN pre-release did (algorithm.md §3).

    fluid: M / max|M| (unit top speed). sky: M / max|M| x 3 / mean_nonzero|M_raw|, the mean taken
    before normalisation as in the released code (its intent was probably a mean speed of 3 px/frame).
    """
    flow = zscore_filter(raw)
    speed = np.hypot(flow[0], flow[1])
    top = float(speed.max())
    if top == 0:
        return np.zeros_like(flow)
    out = flow / top
    if kind == "sky":
        raw_speed = np.hypot(raw[0], raw[1])
        out = out * (3.0 / float(raw_speed[raw_speed > 0].mean()))
    return out.astype(np.float32)


@torch.no_grad()
def predict_motion(image: np.ndarray, models_dir: str | Path | None, mode: str = "sky+fluid", *,
                   device: torch.device | str = "cpu") -> np.ndarray:
    """Dense motion predicted from the image alone (``--motion auto``); not yet masked or scaled.

    Args:
        image: (H, W, C) float32 RGB(A) in [0, 1].
        mode: sky, fluid or sky+fluid (the sum of both models' normalised fields).

    Returns:
        (2, H, W) float32, px/frame at the image's resolution, channel 0 = x, 1 = y.

    Raises:
        InputError: unknown mode. ModelMissing: a needed motion model is not in the folder.
    """
    if mode not in MOTION_MODES:
        raise InputError(f"motion auto mode must be one of {', '.join(MOTION_MODES)}, got {mode!r}")
    height, width = image.shape[:2]
    rgb = torch.from_numpy(np.ascontiguousarray(image[:, :, :3].transpose(2, 0, 1))).float()[None]
    x = F.interpolate(rgb * 2.0 - 1.0, size=(FLOW_SIDE, FLOW_SIDE), mode="bilinear", align_corners=False,
                      antialias=True)
    total = np.zeros((2, FLOW_SIDE, FLOW_SIDE), np.float32)
    for kind in ("sky", "fluid"):
        if kind not in mode.split("+"):
            continue
        net = load_motion_generator(require_model(models_dir, f"flow_{kind}", f"--motion auto ({kind})"), device)
        raw = net(x.to(device))[0].float().cpu().numpy()
        total += normalise_flow(raw, kind)  # type: ignore[arg-type]
    return resize_motion(total, height, width)
