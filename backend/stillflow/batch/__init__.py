"""Batch renders at scale: ``stillflow batch`` over a folder of stills or a manifest, resumable, on
local worker processes (local.py) or a Ray cluster (ray_exec.py).

items.py finds the items, work.py turns one into a task (input hash, done check, render), run.py
drives a batch, report.py prints the progress and writes batch.json, commands.py is the CLI.
Ray: ray_connect.py joins or starts a cluster (loopback when local) and watches its head,
ray_task.py is what runs on a worker, sizing.py is each task's threads and memory.
Importing the package is cheap (no torch, no ray).
"""
from __future__ import annotations

__all__: list[str] = []
