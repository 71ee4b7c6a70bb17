"""The backend service: ZeroMQ job server (server.py I/O loop, dispatch.py request answers, peers.py client
bookkeeping, config.py ServerConfig), jobs (jobs.py), CURVE keys (keys.py), CLI (commands.py).

Imports torch only when a job runs or ``stillflow serve`` starts; importing the package is cheap.
"""
from __future__ import annotations

__all__: list[str] = []
