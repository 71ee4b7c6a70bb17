"""The one error hierarchy of Stillflow: ``str(error)`` is the user-facing message.

Every class carries the exit status the command line uses and the code the wire protocol
sends, so the CLI, the service and the add-on agree. No torch, no bpy.
"""
from __future__ import annotations

__all__ = [
    "StillflowError",
    "InputError",
    "ModelMissing",
    "ProtocolError",
    "BackendUnavailable",
    "Cancelled",
    "JobFailed",
    "EncoderFailed",
    "shown",
    "MAX_SHOWN_CHARS",
]

MAX_SHOWN_CHARS = 200
"""Longest echo of a client's value in an error message or log line."""


class StillflowError(Exception):
    """Base class; an unexpected failure inside Stillflow."""

    exit_code: int = 1
    wire_code: str = "internal"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message if hint is None else f"{message}; {hint}")
        self.hint = hint


class InputError(StillflowError):
    """Bad image, mask, motion or option given by the user."""

    exit_code = 2
    wire_code = "bad_input"


class ModelMissing(InputError):
    """A weights file an engine or option needs is not in the models folder."""

    exit_code = 2
    wire_code = "model_missing"


class ProtocolError(StillflowError):
    """A message that does not follow the wire protocol (version, framing, types)."""

    exit_code = 3
    wire_code = "protocol"


class BackendUnavailable(StillflowError):
    """The backend service cannot be reached or stopped answering."""

    exit_code = 4
    wire_code = "unavailable"


class JobFailed(StillflowError):
    """A job failed inside the backend; the message is the backend's."""

    exit_code = 5
    wire_code = "job_failed"


class EncoderFailed(StillflowError):
    """The video encoder (ffmpeg) failed on frames that were rendered."""

    exit_code = 6
    wire_code = "encoder_failed"


class Cancelled(StillflowError):
    """The job was cancelled before it finished; nothing was written."""

    exit_code = 130
    wire_code = "cancelled"


ERRORS_BY_WIRE_CODE: dict[str, type[StillflowError]] = {
    cls.wire_code: cls
    for cls in (StillflowError, InputError, ModelMissing, ProtocolError, BackendUnavailable, JobFailed, EncoderFailed,
                Cancelled)
}


def shown(value: object, limit: int = 60, *, quote: bool = True) -> str:
    """``repr(value)`` (or ``str`` without ``quote``) cut to ``limit`` characters, for echoing input safely."""
    if isinstance(value, (str, bytes)) and len(value) > 4 * limit:
        value = value[:4 * limit]  # repr of a huge string costs memory before it is cut
    try:
        text = repr(value) if quote else str(value)
    except Exception:  # a value whose repr fails (or is refused, like ints beyond 4300 digits)
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else f"{text[:limit - 3]}..."
