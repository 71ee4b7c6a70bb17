"""The backend's own folder inside its results folder: job scratch space and who owns which result.

``RESULTS/.stillflow`` belongs to the backend; clients can never name it (output names may not
have a part starting with '.'). It holds:
    scratch/HOST-PID/   one folder per running backend: uploaded inputs and remote jobs' renders.
                        A backend removes its own at shutdown and, at start, those of backends
                        on this host whose process is gone (SIGKILL).
    owners.json         result path (relative to RESULTS) -> owner token (a hash of the client's
                        CURVE key or routing id). A result may be replaced only by its owner.
    owner.key           a random key readable by the backend's user only (link/owner_key.py): a
                        client that sends it is that user and may replace any result.

Thread contract: ``claim`` runs on the I/O thread; workers only read ``scratch``.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import shutil
import socket
from pathlib import Path

from ..link.owner_key import OWNER_KEY_FILE, PRIVATE, is_owner_key
from .parent_watch import is_alive
from .paths import not_yours

__all__ = ["ResultStore", "PRIVATE"]

log = logging.getLogger(__name__)

class ResultStore:
    """Scratch space and result ownership under ``results / PRIVATE``."""

    def __init__(self, results: Path) -> None:
        self.results = results
        root = results / PRIVATE
        self._owners_file = root / "owners.json"
        self._host = socket.gethostname().replace("-", "_") or "host"
        scratch_root = root / "scratch"
        scratch_root.mkdir(parents=True, exist_ok=True)
        for stale in _dead_scratch(scratch_root, self._host):
            log.info("removing scratch of a backend that is gone: %s", stale.name)
            shutil.rmtree(stale, ignore_errors=True)
        self.scratch = scratch_root / f"{self._host}-{os.getpid()}"
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.scratch.mkdir(mode=0o700)
        self._owners = self._load_owners()
        self._owner_key = _owner_key(root / OWNER_KEY_FILE)

    def close(self) -> None:
        """Remove this backend's scratch folder."""
        shutil.rmtree(self.scratch, ignore_errors=True)

    def is_owner(self, key: object) -> bool:
        """True when ``key`` is this results folder's owner key (its user: may replace any result)."""
        return is_owner_key(key) and hmac.compare_digest(str(key), self._owner_key)

    def claim(self, target: str, principal: bytes, what: str, shown_name: str, *, pending: bool = False,
              owner: bool = False) -> None:
        """Make ``target`` (a resolved path under the results folder) the result of ``principal``.

        ``pending``: a queued or running job of another client writes ``target``.
        ``owner``: the client sent the owner key; a finished result of anyone's is its to replace.

        Raises:
            InputError (``paths.not_yours``): ``target`` holds something (or will) that is not
                ``principal``'s: the same words whether it is another client's result or any other
                folder, so nobody learns what others keep. A missing or empty folder is anyone's.
        """
        key = Path(target).relative_to(self.results).as_posix()
        token = _token(principal)
        if self._owners.get(key) == token:
            return
        if pending or (not owner and _holds_anything(Path(target))):
            raise not_yours(what, shown_name)
        self._owners[key] = token
        self._save_owners()

    def claim_file(self, target: str, principal: bytes, taken: set[str], *, owner: bool = False) -> str:
        """Claim the file ``target`` for ``principal``, or the first free NAME-2, NAME-3... beside it.

        A file that is not the caller's result (another client's, one Stillflow did not write, one a
        pending job of another client writes: ``taken``) is never replaced; the caller's own (or,
        with the owner key, any finished one) is.
        """
        path = Path(target)
        for number in range(1, 1000):
            candidate = path if number == 1 else path.with_name(f"{path.stem}-{number}{path.suffix}")
            key = candidate.relative_to(self.results).as_posix()
            if str(candidate) in taken or (os.path.lexists(candidate) and candidate.is_dir()):
                continue
            if self._owners.get(key) == _token(principal) or owner or not os.path.lexists(candidate):
                self._owners[key] = _token(principal)
                self._save_owners()
                return str(candidate)
        raise not_yours("video", path.name)

    def _load_owners(self) -> dict[str, str]:
        """The saved owners of results that still exist (or an empty map)."""
        try:
            data = json.loads(self._owners_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {key: value for key, value in data.items() if isinstance(key, str) and isinstance(value, str)
                and os.path.lexists(self.results / key)}

    def _save_owners(self) -> None:
        """Write owners.json whole (a temporary file moved into place)."""
        staging = self._owners_file.with_name(f".owners-{os.getpid()}.tmp")
        try:
            staging.write_text(json.dumps(self._owners), encoding="utf-8")
            os.replace(staging, self._owners_file)
        except OSError as exc:
            log.warning("cannot save result owners to %s: %s", self._owners_file, exc.strerror)


def _owner_key(path: Path) -> str:
    """The owner key kept in ``path`` (made, readable by this user only, when missing or malformed)."""
    try:
        if path.stat().st_mode & 0o077 == 0:
            text = path.read_text(encoding="ascii").strip()
            if is_owner_key(text):
                return text
    except (OSError, ValueError):
        pass
    key = secrets.token_hex(32)
    staging = path.with_name(f".owner-{os.getpid()}.tmp")
    descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as out:
        out.write(key)
    os.replace(staging, path)
    return key


def _token(principal: bytes) -> str:
    """A stable, non-reversible name for a client principal."""
    return hashlib.sha256(principal).hexdigest()[:32]


def _holds_anything(path: Path) -> bool:
    """True when ``path`` exists and is not an empty folder."""
    if not os.path.lexists(path):
        return False
    if path.is_symlink() or not path.is_dir():
        return True
    try:
        with os.scandir(path) as entries:
            return next(entries, None) is not None
    except OSError:
        return True


def _dead_scratch(root: Path, host: str) -> list[Path]:
    """Scratch folders of this host's backends whose process is gone."""
    stale = []
    for entry in root.iterdir():
        name_host, _, pid = entry.name.rpartition("-")
        if name_host == host and pid.isdigit() and (int(pid) == os.getpid() or not is_alive(int(pid))):
            stale.append(entry)
    return stale
