"""Learned mask for ``--mask auto``: DatasetGAN pixel classifiers voting on generator features.

Each of ten classifiers (Linear 1472 -> 128 -> 32 -> 3 with ReLU and BatchNorm1d, classes
0 static, 1 sky, 2 fluid) labels every pixel of a 512 px grid from the generator's features
of the inverted image; the labels are majority-voted, the class(es) of the mode are kept and
the StyleCineGAN refinement recipe is applied (algorithm.md §4, §7).

Features with the k = 10 encoder (design inference; the published classifiers expect 1472
channels, which the released k = 9 code drew from D9): D9 of the ordinary synthesis of w+
(64 px, 512 ch), then D10 and every conv output from 128 to 1024 px (256+256, 128+128, 64+64,
32+32). The first linear layer is applied per feature at its own resolution and resized
afterwards, which equals resizing then applying it (both are linear) at 1/11 of the memory.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..progress import CancelFn, ProgressFn
from ..stages.mask import refine_mask
from ..gan.checkpoint import load_into, read_weights, strip_prefix
from ..gan.engine import load_inversion, load_models
from ..gan.invert import InversionSettings
from ..gan.model import Generator
from ..gan.models_dir import MASK_ENSEMBLE, require_model

__all__ = ["PixelClassifier", "load_classifier", "feature_stack", "vote_labels", "predict_mask", "MASK_MODES"]

log = logging.getLogger(__name__)

MASK_MODES = {"sky": (1,), "fluid": (2,), "sky+fluid": (1, 2)}
"""Classes kept as animated for each mode."""


class PixelClassifier(nn.Module):
    """Per-pixel MLP: features (P, F) -> class logits (P, 3)."""

    def __init__(self, in_features: int = 1472, classes: int = 3) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(in_features, 128), nn.ReLU(), nn.BatchNorm1d(128),
                                    nn.Linear(128, 32), nn.ReLU(), nn.BatchNorm1d(32), nn.Linear(32, classes))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(P, F) -> (P, classes)."""
        return self.layers(features)


def load_classifier(path: str | Path, device: torch.device | str = "cpu") -> PixelClassifier:
    """Read one ``best_model_number_<i>.pth`` (dict with ``model_state_dict``, DataParallel keys)."""
    path = Path(path)
    obj = read_weights(path)
    if isinstance(obj, dict) and isinstance(obj.get("model_state_dict"), dict):
        obj = obj["model_state_dict"]
    if not isinstance(obj, dict) or "module.layers.0.weight" not in obj and "layers.0.weight" not in obj:
        raise InputError(f"{path} is not a DatasetGAN pixel classifier", hint="see docs/stylegan.md")
    state = strip_prefix(dict(obj), "module.")
    in_features, classes = int(state["layers.0.weight"].shape[1]), int(state["layers.6.weight"].shape[0])
    with torch.device("meta"):
        net = PixelClassifier(in_features, classes)
    load_into(net, state, path, "DatasetGAN pixel classifier")
    return net.to(device)


@torch.no_grad()
def feature_stack(generator: Generator, w_plus: torch.Tensor, feature: torch.Tensor, index: int) -> list[torch.Tensor]:
    """The per-pixel features: D_{k-1} of the plain synthesis, D_k, then every conv output after it.

    Returns:
        list of (1, C_i, r_i, r_i) tensors, sum of C_i = 1472 for the 1024 px model with k = 10.
    """
    # D_{k-1} = output of convs[k - 3] (conv1 for k = 2) in the ordinary synthesis of w+
    coarse = generator.conv1(generator.input(w_plus.shape[0]), w_plus[:, 0], generator.noise_buffer(0))
    for j in range(index - 2):
        coarse = generator.convs[j](coarse, w_plus[:, j + 1], generator.noise_buffer(j + 1))
    return [coarse, feature, *generator.block_outputs(w_plus, feature, index)]


@torch.no_grad()
def vote_labels(classifiers: list[PixelClassifier], features: list[torch.Tensor], side: int) -> torch.Tensor:
    """Majority vote of the classifiers' argmax labels on a side x side grid: (side, side) int64."""
    votes = None
    for net in classifiers:
        first, rest = net.layers[0], net.layers[1:]
        offset = 0
        hidden = None
        for feat in features:
            channels = feat.shape[1]
            weight = first.weight[:, offset:offset + channels, None, None]
            part = F.conv2d(feat.float(), weight)
            part = F.interpolate(part, size=(side, side), mode="bilinear", align_corners=False)
            hidden = part if hidden is None else hidden + part
            offset += channels
        if offset != first.weight.shape[1]:
            raise InputError(f"the mask classifiers expect {first.weight.shape[1]} feature channels, "
                             f"the generator gives {offset}",
                             hint="use the classifiers trained for this generator (docs/stylegan.md)")
        assert hidden is not None
        hidden = (hidden + first.bias[None, :, None, None])[0].reshape(first.weight.shape[0], -1).t()
        labels = rest(hidden).argmax(dim=1)
        counts = F.one_hot(labels, rest[-1].out_features)
        votes = counts if votes is None else votes + counts
    assert votes is not None
    return votes.argmax(dim=1).reshape(side, side)


def _squares(height: int, width: int) -> list[tuple[int, int, int]]:
    """(top, left, side) of the fewest min(H, W) squares, evenly spread, that cover the image."""
    side = min(height, width)
    count = -(-max(height, width) // side)
    span = max(height, width) - side
    starts = [round(i * span / (count - 1)) if count > 1 else 0 for i in range(count)]
    return [(s, 0, side) if height > width else (0, s, side) for s in starts]


def predict_mask(image: np.ndarray, models_dir: str | Path | None, mode: str = "sky+fluid", *,
                 device: torch.device | str = "cpu", min_region_frac: float = 0.03, min_mask_frac: float = 0.10,
                 settings: InversionSettings = InversionSettings(), progress: ProgressFn | None = None,
                 should_cancel: CancelFn | None = None) -> np.ndarray:
    """Animation mask predicted from the image (``--mask auto``), refined.

    Args:
        image: (H, W, C) float32 RGB(A) in [0, 1].
        mode: sky, fluid or sky+fluid.

    Returns:
        (H, W) float32 binary mask (1 = animate) at the image's resolution.

    Raises:
        InputError: unknown mode. ModelMissing: generator or a classifier is not in the folder.
    """
    if mode not in MASK_MODES:
        raise InputError(f"mask auto mode must be one of {', '.join(MASK_MODES)}, got {mode!r}")
    paths = [require_model(models_dir, f"mask_{i}", "--mask auto") for i in range(MASK_ENSEMBLE)]
    device = torch.device(device)
    models = load_models(str(models_dir), device)
    classifiers = [load_classifier(p, device) for p in paths]
    generator = models.generator
    index = generator.default_feature_index()
    side = generator.config.size // 2
    height, width = image.shape[:2]
    mask = np.zeros((height, width), np.float32)
    for top, left, square_side in _squares(height, width):
        crop = torch.from_numpy(np.ascontiguousarray(image[top:top + square_side, left:left + square_side, :3]
                                                     .transpose(2, 0, 1))).float().to(device)[None]
        crop = F.interpolate(crop, size=(generator.config.size,) * 2, mode="bilinear", align_corners=False,
                             antialias=True)
        inversion = load_inversion(models, crop, index, settings, progress, should_cancel)
        features = feature_stack(inversion.generator, inversion.w_plus, inversion.feature, index)
        labels = vote_labels(classifiers, features, side)
        keep = torch.zeros_like(labels, dtype=torch.bool)
        for cls in MASK_MODES[mode]:
            keep |= labels == cls
        small = keep.float()[None, None]
        full = F.interpolate(small, size=(square_side, square_side), mode="bilinear", align_corners=False)[0, 0]
        region = mask[top:top + square_side, left:left + square_side]
        np.maximum(region, (full.cpu().numpy() > 0.5).astype(np.float32), out=region)
    return refine_mask(mask, min_region_frac=min_region_frac, min_mask_frac=min_mask_frac, fill_unpainted=True)
