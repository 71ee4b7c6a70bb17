"""Per-frame measures for bench_quality.py: fidelity (PSNR, SSIM), sharpness, speckle, dots, seam, breathing."""
from __future__ import annotations

import cv2
import numpy as np

SPECKLE_LEVEL = 12.0 / 255.0
"""A pixel whose luma sits this far from its 3x3 median counts as a speckle (an isolated outlier)."""


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM of two gray images in [0, 1] (Gaussian window, sigma 1.5)."""
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    blur = lambda x: cv2.GaussianBlur(x, (11, 11), 1.5)  # noqa: E731
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))


def gray(image: np.ndarray) -> np.ndarray:
    """Luma of an RGB float image."""
    return cv2.cvtColor(np.ascontiguousarray(image, np.float32), cv2.COLOR_RGB2GRAY)


def fidelity(generated: list[np.ndarray], real: list[np.ndarray], mask: np.ndarray, ts: range) -> dict[str, float]:
    """Mean PSNR (dB) and SSIM inside the mask over frames ``ts``."""
    psnr, ssim = [], []
    for t in ts:
        mse = float(((generated[t] - real[t]) ** 2)[mask].mean())
        psnr.append(10 * np.log10(1.0 / max(mse, 1e-12)))
        ssim.append(float(ssim_map(gray(generated[t]), gray(real[t]))[mask].mean()))
    return {"psnr": float(np.mean(psnr)), "ssim": float(np.mean(ssim))}


def frame_sharpness(frame: np.ndarray, mask: np.ndarray) -> float:
    """Laplacian variance of the luma inside the mask."""
    return float(cv2.Laplacian(gray(frame), cv2.CV_32F)[mask].var())


def sharpness(frames: list[np.ndarray], mask: np.ndarray, ts: range) -> float:
    """Mean Laplacian variance inside the mask over frames ``ts``."""
    return float(np.mean([frame_sharpness(frames[t], mask) for t in ts]))


def speckle_rate(frame: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of mask pixels whose luma is an isolated outlier: off its 3x3 median by > SPECKLE_LEVEL.

    Real footage has a few (noise, stars of light, fine cloud texture); single-pixel dots and
    cracks left by a splat raise it.
    """
    luma = gray(frame)
    median = cv2.medianBlur(np.clip(luma * 255.0, 0, 255).astype(np.uint8), 3).astype(np.float32) / 255.0
    return float((np.abs(luma - median) > SPECKLE_LEVEL)[mask].mean())


def speckle(frames: list[np.ndarray], mask: np.ndarray, ts: range) -> float:
    """Mean speckle rate over frames ``ts``."""
    return float(np.mean([speckle_rate(frames[t], mask) for t in ts]))


def dots(frames: list[np.ndarray], mask: np.ndarray) -> float:
    """The largest speckle rate of a frame t >= 1 over frame 0's own (isolated single-pixel outliers)."""
    base = max(speckle_rate(frames[0], mask), 1e-9)
    return max(speckle_rate(f, mask) for f in frames[1:]) / base


def seam_and_pulse(frames: list[np.ndarray]) -> tuple[float, float]:
    """The loop's seam |f0 - f(N-1)| and its pulse, the largest step |f(t+1) - f(t)| (the wrap included,
    a surge such as the cross-over's dissolve between two copies far apart), each over the median step
    (mean absolute differences)."""
    steps = [float(np.abs(frames[t + 1] - frames[t]).mean()) for t in range(len(frames) - 1)]
    wrap = float(np.abs(frames[0] - frames[-1]).mean())
    median = max(float(np.median(steps)), 1e-12)
    return wrap / median, max(max(steps), wrap) / median


def breathing(frames: list[np.ndarray], mask: np.ndarray) -> tuple[float, float]:
    """(min, max) over t >= 1 of frame t's sharpness relative to frame 0's."""
    base = max(frame_sharpness(frames[0], mask), 1e-12)
    ratios = [frame_sharpness(f, mask) / base for f in frames[1:]]
    return float(min(ratios)), float(max(ratios))
