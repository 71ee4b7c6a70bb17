"""How the backend service is set up: ``ServerConfig`` (bind address, devices, workers, limits, keys)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..link.protocol import Limits
from .keys import ServerKeys

__all__ = ["ServerConfig"]


@dataclass(frozen=True)
class ServerConfig:
    """How the service binds, which devices it drives and its limits."""

    bind: str = "tcp://127.0.0.1:5555"
    devices: tuple[str, ...] = ("auto",)
    workers: int = 1
    queue_size: int = 16
    limits: Limits = field(default_factory=Limits.for_requests)
    keys: ServerKeys | None = None
    heartbeat_s: float = 1.0
    client_timeout_s: float = 60.0
    log_path: str | None = None
    models: str | None = None
    client_queue: int = 8
    """Most queued jobs one client may have (never more than queue_size)."""
    client_backlog_bytes: int = 64 << 20
    """Unsent result bytes per client before its job pauses (a client that stops reading)."""
    results_dir: str | None = None
    """Where job outputs go (None: ``paths.default_results_dir()``)."""
    allow_read: tuple[str, ...] = ()
    """Folders whose files clients may name as input paths (none: clients send bytes)."""
    ray: str | None = None
    """Ray cluster address: jobs run as Ray tasks there (service/ray_runner.py) instead of here."""
