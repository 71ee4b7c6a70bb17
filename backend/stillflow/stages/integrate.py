"""Euler integration of a static motion field into per-frame displacements (algorithm.md §1.2 step 3).

Forward p_{k+1} = p_k + M(round(p_k)) and backward q_{k+1} = q_k - M(round(q_k)), nearest
lookup with round-half-even so CPU and GPU trajectories agree. Integrated once, at full
resolution, on the padded canvas; a particle that leaves the canvas is invalid from then on.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..errors import Cancelled
from . import cpu_kernels

__all__ = ["EulerState", "euler_step", "euler_step_torch", "LoopTrajectories", "resample_displacement"]


class EulerState:
    """Displacements and validity of every particle of the canvas after ``steps`` Euler steps.

    The state holds the displacement from each particle's own pixel (what the splat reads), not
    its position: a frame then needs no subtraction pass over the canvas.
    """

    __slots__ = ("displacement", "valid", "steps")

    def __init__(self, displacement: torch.Tensor, valid: torch.Tensor, steps: int) -> None:
        self.displacement = displacement
        self.valid = valid
        self.steps = steps

    @classmethod
    def start(cls, height: int, width: int, device: torch.device) -> "EulerState":
        """Every particle at its own pixel centre, all valid, zero steps."""
        return cls(torch.zeros((2, height, width), dtype=torch.float32, device=device),
                   torch.ones(height, width, dtype=torch.bool, device=device), 0)

    @property
    def positions(self) -> torch.Tensor:
        """(2, H, W) float32 positions x + dx, y + dy in canvas pixels."""
        return _grid(self.displacement) + self.displacement

    def copy(self) -> "EulerState":
        """An independent copy."""
        return EulerState(self.displacement.clone(), self.valid.clone(), self.steps)


def _grid(like: torch.Tensor) -> torch.Tensor:
    """(2, H, W) float32 pixel coordinates x then y of a (2, H, W) field."""
    _, height, width = like.shape
    ys, xs = torch.meshgrid(torch.arange(height, device=like.device, dtype=torch.float32),
                            torch.arange(width, device=like.device, dtype=torch.float32), indexing="ij")
    return torch.stack([xs, ys])


def euler_step(state: EulerState, motion: torch.Tensor, sign: float) -> EulerState:
    """Advance every particle by one step of ``sign`` x motion, in place; returns the state.

    Args:
        state: displacement (2, H, W) float32 in canvas pixels, valid (H, W) bool.
        motion: (2, H, W) float32, px/frame on the same canvas.
        sign: +1 forward in time, -1 backward.
    """
    if state.displacement.device.type == "cpu" and cpu_kernels.available():
        cpu_kernels.euler_step_cpu(state.displacement.numpy(), state.valid.numpy(), motion.contiguous().numpy(), sign)
        state.steps += 1
        return state
    return euler_step_torch(state, motion, sign)


def euler_step_torch(state: EulerState, motion: torch.Tensor, sign: float) -> EulerState:
    """The torch reference of ``euler_step`` (any device)."""
    _, height, width = motion.shape
    disp = state.displacement
    pos = _grid(disp) + disp
    ix = torch.round(pos[0]).clamp_(0, width - 1).long()
    iy = torch.round(pos[1]).clamp_(0, height - 1).long()
    flat = iy * width + ix
    step = motion.reshape(2, -1)[:, flat.reshape(-1)].reshape(2, height, width)
    disp.add_(step, alpha=sign)
    pos = _grid(disp) + disp
    state.valid &= (pos[0] >= 0) & (pos[0] <= width - 1) & (pos[1] >= 0) & (pos[1] <= height - 1)
    state.steps += 1
    return state


class LoopTrajectories:
    """Forward and backward displacements for every frame of an N-frame loop, O(N) steps in all.

    Frame t needs the forward field after t steps and the backward field after N - t steps.
    Frames are asked for in increasing t, so the forward state advances incrementally while
    the backward steps count down: the backward trajectory is integrated once, keeping a
    checkpoint every K steps, and each K-step segment is recomputed once from its checkpoint
    when the countdown enters it (about 2N steps and N/K + K stored states, K ~ sqrt(N)).

    Args:
        motion: (2, H, W) float32, px/frame on the padded canvas.
        frames: loop length N.
        once: forward motion only (no backward trajectory, alpha = 0).
        should_cancel: checked every step (integrating a long loop takes seconds); raises Cancelled.
    """

    def __init__(self, motion: torch.Tensor, frames: int, *, once: bool = False,
                 should_cancel: Callable[[], bool] | None = None) -> None:
        self.motion = motion
        self.frames = frames
        self.once = once
        self.should_cancel = should_cancel
        _, self.height, self.width = motion.shape
        self._origin = EulerState.start(self.height, self.width, motion.device)
        self._fwd = self._origin.copy()
        self._segment_len = max(1, math.isqrt(frames))
        self._checkpoints: dict[int, EulerState] = {}
        self._segment: dict[int, EulerState] = {}
        if not once:
            state = self._origin.copy()
            for k in range(frames + 1):
                if k % self._segment_len == 0:
                    self._checkpoints[k] = state.copy()
                if k < frames:
                    self.check_cancel()
                    euler_step(state, motion, -1.0)

    def check_cancel(self) -> None:
        """Raise Cancelled when should_cancel() says so (the renderer also calls it between bands)."""
        if self.should_cancel is not None and self.should_cancel():
            raise Cancelled("the job was cancelled; nothing was written")

    def _forward(self, steps: int) -> EulerState:
        """The forward state after ``steps`` steps (restarts if asked to go back)."""
        if steps < self._fwd.steps:
            self._fwd = self._origin.copy()
        while self._fwd.steps < steps:
            self.check_cancel()
            euler_step(self._fwd, self.motion, 1.0)
        return self._fwd

    def _backward(self, steps: int) -> EulerState:
        """The backward state after ``steps`` steps, from the checkpointed segment."""
        if steps not in self._segment:
            base = (steps // self._segment_len) * self._segment_len
            state = self._checkpoints[base].copy()
            self._segment = {base: state.copy()}
            for k in range(base + 1, min(base + self._segment_len, self.frames) + 1):
                self.check_cancel()
                euler_step(state, self.motion, -1.0)
                self._segment[k] = state.copy()
        return self._segment[steps]

    def at(self, t: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, float]:
        """Displacements, validity and loop phase for frame ``t`` (0 <= t <= N).

        The tensors are the trajectories' own state: read them before the next call, do not modify them.

        Returns:
            disp_fwd (2, H, W), valid_fwd (H, W) bool, disp_bwd (2, H, W), valid_bwd (H, W) bool,
            phase = t / N (0 in once mode); the backward copy's share is blend_schedule(phase).
        """
        fwd = self._forward(t)
        if self.once:
            return fwd.displacement, fwd.valid, self._origin.displacement, self._origin.valid, 0.0
        bwd = self._backward(self.frames - t)
        return fwd.displacement, fwd.valid, bwd.displacement, bwd.valid, t / self.frames


def resample_displacement(disp: torch.Tensor, valid: torch.Tensor, factor: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Displacement and validity of a pyramid level ``factor`` times coarser.

    Level pixel i sits on full-resolution pixel i * factor (cv2.pyrDown convention), so the
    field is sampled there and divided by the factor (pixels of the coarser level).

    Args:
        disp: (2, H, W) float32 displacement in full-resolution pixels.
        valid: (H, W) bool.
        factor: power of two >= 1.

    Returns:
        disp_l (2, ceil(H / factor), ceil(W / factor)) in level pixels, valid_l of the same size.
    """
    if factor == 1:
        return disp, valid
    return disp[:, ::factor, ::factor] / factor, valid[::factor, ::factor]
