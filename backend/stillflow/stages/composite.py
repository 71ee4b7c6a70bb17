"""Compositing the animated result over the still: static pixels bit-exact (algorithm.md §1.2 step 8)."""
from __future__ import annotations

import numpy as np
import torch

from . import cpu_kernels

__all__ = ["composite", "composite_torch"]


def composite(image: np.ndarray, *, composite_mask_t: torch.Tensor, result: torch.Tensor,
              out: np.ndarray | None = None) -> np.ndarray:
    """O = S * Y + (1 - S) * I where S > 0, and exactly I where S = 0.

    Args:
        image: (H, W, C) float32 input still (numpy, the bit-exact source of static pixels).
        composite_mask_t: (H, W) float32 S in [0, 1] on the result's device.
        result: (C, H, W) float32 animated frame Y.
        out: optional (H, W, C) float32 array (a view is fine) to write the frame into.

    Returns:
        (H, W, C) float32 frame (``out`` when given).
    """
    if result.device.type == "cpu" and cpu_kernels.available():
        return cpu_kernels.composite_cpu(image, composite_mask_t.contiguous().numpy(), result.contiguous().numpy(), out)
    frame = composite_torch(image, composite_mask_t=composite_mask_t, result=result)
    if out is None:
        return frame
    out[...] = frame
    return out


def composite_torch(image: np.ndarray, *, composite_mask_t: torch.Tensor, result: torch.Tensor) -> np.ndarray:
    """The torch reference of ``composite`` (any device)."""
    mask = composite_mask_t[None]
    image_t = torch.from_numpy(image).to(result.device).permute(2, 0, 1)
    blended = mask * result + (1.0 - mask) * image_t
    # where() rather than arithmetic: 0 * Y must not leak a non-finite Y into static pixels.
    out = torch.where(mask > 0, blended, image_t)
    return out.permute(1, 2, 0).cpu().numpy().copy()
