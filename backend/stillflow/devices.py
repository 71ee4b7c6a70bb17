"""The one place a compute device is picked."""
from __future__ import annotations

import logging

import torch

from .errors import InputError

__all__ = ["pick", "resolved_name"]

log = logging.getLogger(__name__)


def pick(requested: str = "auto") -> torch.device:
    """The torch device for ``requested``: auto = CUDA, else MPS, else CPU.

    Raises:
        InputError: the named device does not exist on this machine.
    """
    name = (requested or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"unknown device {requested!r}", hint="use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and (not torch.cuda.is_available()
                                  or (device.index or 0) >= torch.cuda.device_count()):
        raise InputError(f"device {requested!r} is not available: no such CUDA device here",
                         hint="use --device auto or cpu")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError(f"device {requested!r} is not available on this machine", hint="use --device auto or cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"unsupported device {requested!r}", hint="use auto, cpu, cuda, cuda:N or mps")
    return device


def resolved_name(requested: str) -> str:
    """The device name ``requested`` stands for here: 'auto' becomes cuda, mps or cpu; others are kept."""
    return str(pick(requested)) if (requested or "auto").strip().lower() == "auto" else requested
