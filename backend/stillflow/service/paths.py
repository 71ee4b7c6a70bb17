"""What the service may write and read on its machine: the results folder and the --allow-read folders.

Clients never name arbitrary paths: outputs go under the results folder (a short relative name,
or an absolute path that resolves inside it), and input paths are read only when they resolve
inside a folder the backend was started with ``--allow-read``. Refusals of paths outside those
folders never depend on whether the path exists.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any, Literal, Sequence

from ..errors import InputError
from ..io.frames import check_file_target, check_replaceable

__all__ = ["PathPolicy", "default_results_dir", "check_plain_name", "upload_name", "not_yours", "MAX_NAME"]

MAX_NAME = 100
"""Longest output name a client may give (characters)."""

_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_. -]*")
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,10}")
_NAME_RULE = (f"a relative name of up to {MAX_NAME} characters: letters, digits, '_', '-', '.' and spaces, "
              "subfolders split by '/', no part starting with '.'")


def default_results_dir() -> Path:
    """The per-user folder for results when ``serve`` gets no --results."""
    home = Path.home()
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "Stillflow" / "results"
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local") / "Stillflow" / "results"
    return Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share") / "stillflow" / "results"


def check_plain_name(value: Any, what: str) -> str:
    """``value`` when it is a plain, safe file name (no folder, no leading dot); InputError otherwise."""
    if not isinstance(value, str) or len(value) > MAX_NAME or not _PART.fullmatch(value):
        raise InputError(f"{what} must be a plain file name of up to {MAX_NAME} letters, digits, '_', '-', '.' "
                         f"and spaces (not starting with '.'), got {str(value)[:200]!r}")
    return value


def upload_name(value: Any, what: str, stem: str) -> str:
    """The name an uploaded file gets in a job's scratch folder: ``stem`` plus the client's suffix (its format)."""
    if not isinstance(value, str) or not value or len(value) > 255 or any(c in value for c in "/\\\0"):
        raise InputError(f"{what} must be the file's plain name (for its format), got {str(value)[:200]!r}")
    suffix = os.path.splitext(value)[1]
    return stem + (suffix.lower() if _SUFFIX.fullmatch(suffix) else "")


def not_yours(what: str, value: str) -> InputError:
    """The one refusal for an output that exists and is not the caller's to replace."""
    return InputError(f"{what} {value[:200]} is not one of this client's results: it is not replaced",
                      hint="choose a new name")


def _inside(path: Path, root: Path) -> bool:
    """True when the resolved ``path`` is ``root`` or below it."""
    return path == root or root in path.parents


class PathPolicy:
    """The results folder outputs go under and the folders input paths may be read from."""

    def __init__(self, results_dir: str | os.PathLike[str] | None = None,
                 allow_read: Sequence[str | os.PathLike[str]] = (), *, models: str | None = None,
                 local: bool = True) -> None:
        self.results = Path(results_dir if results_dir is not None else default_results_dir()).resolve()
        self.allow_read = tuple(Path(folder).resolve() for folder in allow_read)
        # the server's own --models folder may always be named as options.models
        self._models = Path(models).resolve() if models else None
        self.local = local

    def hello(self) -> dict[str, Any]:
        """What ``hello`` tells clients: whether paths are read, and the folders' names to local clients only."""
        return {"read_paths": bool(self.allow_read),
                "results_dir": str(self.results) if self.local else None,
                "allow_read": [str(folder) for folder in self.allow_read] if self.local else None}

    def output(self, value: Any, what: str, *, kind: Literal["folder", "file"] = "folder") -> str:
        """The absolute path under the results folder that a client's out_dir / video names.

        Raises:
            InputError: not a valid name, outside the results folder (symbolic links resolved),
                the results folder itself, or an existing target that must not be replaced.
        """
        if not isinstance(value, str) or not value or "\0" in value:
            raise InputError(f"{what} must be a name inside the backend's results folder")
        try:
            return self._output(value, what, kind)
        except OSError as exc:
            raise InputError(f"{what} {value[:200]} cannot be used: {exc.strerror}") from None

    def _output(self, value: str, what: str, kind: str) -> str:
        """``output`` once ``value`` is a string."""
        if os.path.isabs(value):
            target = Path(os.path.realpath(value))
            inner = target.relative_to(self.results).parts if _inside(target, self.results) else ()
            if any(part.startswith(".") for part in inner):  # the backend's own folder and staging folders
                raise InputError(f"{what} {value[:200]!r} is not a valid name", hint=f"give {_NAME_RULE}")
        else:
            parts = value.split("/")
            if len(value) > MAX_NAME or not all(_PART.fullmatch(part) for part in parts):
                raise InputError(f"{what} {value[:200]!r} is not a valid name", hint=f"give {_NAME_RULE}")
            target = Path(os.path.realpath(self.results / value))
        if not _inside(target, self.results):
            raise InputError(f"{what} {value[:200]} is outside the backend's results folder",
                             hint="give a relative name (the backend puts it in its results folder), or start "
                                  "the backend with --results naming a folder that holds this path")
        if target == self.results:
            raise InputError(f"{what} names the results folder itself", hint="give a name inside it")
        self.results.mkdir(parents=True, exist_ok=True)
        try:
            if kind == "folder":
                check_replaceable(target)
            else:
                check_file_target(target)
        except InputError:  # in the words of every refused replacement, without the server's path
            raise not_yours(what, value) from None
        return str(target)

    def readable(self, value: Any, what: str, *, kind: Literal["file", "folder", "any"] = "file",
                 send: str = "") -> str:
        """The resolved path of an input a client names, when this backend may read it.

        ``send`` names the field that carries the bytes instead (for the hint).

        Raises:
            InputError: not an absolute path, outside every --allow-read folder (the same words
                whether it exists or not), or missing / of the wrong kind inside one.
        """
        if not isinstance(value, str) or not os.path.isabs(value) or "\0" in value:
            raise InputError(f"{what} must be an absolute path on the backend machine, got {str(value)[:200]!r}")
        try:
            return self._readable(value, what, kind, send)
        except OSError as exc:
            raise InputError(f"{what} {value[:200]} cannot be read: {exc.strerror}") from None

    def _readable(self, value: str, what: str, kind: str, send: str) -> str:
        """``readable`` once ``value`` is an absolute path string."""
        path = Path(os.path.realpath(value))
        roots = self.allow_read + ((self._models,) if what == "options.models" and self._models else ())
        if not any(_inside(path, root) for root in roots):
            instead = f"send the file's bytes ({send}) instead, or " if send else ""
            raise InputError(f"the backend may not read {what} {value[:200]}: it reads only inside the folders "
                             "it was started with --allow-read",
                             hint=f"{instead}start the backend with --allow-read DIR for a folder that holds it")
        if kind == "file" and not path.is_file() or kind == "folder" and not path.is_dir() or not path.exists():
            noun = {"file": "file", "folder": "folder", "any": "file or folder"}[kind]
            raise InputError(f"{what} {value[:200]} is not a {noun} on the backend machine")
        return str(path)
