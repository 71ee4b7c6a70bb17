"""The results folder's owner key: how a client on the backend's machine proves it is the backend's user.

A backend keeps a random key in ``RESULTS/.stillflow/owner.key``, readable by its own user only.
A client that can read it (it runs on the same machine, as the same user, so it could replace any
result by hand anyway) sends it with a submit and may replace any result in that folder. Every
other client owns only the results it made (its CURVE key or routing id).
"""
from __future__ import annotations

import re
from pathlib import Path

__all__ = ["PRIVATE", "OWNER_KEY_FILE", "read_owner_key", "is_owner_key"]

PRIVATE = ".stillflow"
"""The backend's own folder inside its results folder (clients can never name it)."""
OWNER_KEY_FILE = "owner.key"
_KEY = re.compile(r"[0-9a-f]{64}")


def is_owner_key(value: object) -> bool:
    """True when ``value`` has the form of an owner key (64 lowercase hex digits)."""
    return isinstance(value, str) and _KEY.fullmatch(value) is not None


def read_owner_key(results_dir: object) -> str | None:
    """The owner key of the results folder ``results_dir`` (from ``hello``), or None when it cannot be read."""
    if not isinstance(results_dir, str) or not results_dir:
        return None
    try:
        text = (Path(results_dir) / PRIVATE / OWNER_KEY_FILE).read_text(encoding="ascii").strip()
    except (OSError, ValueError):
        return None
    return text if is_owner_key(text) else None
