"""CURVE keys for a backend reachable from other machines, and the rule for when they are required.

Layout of a keys folder (``stillflow keys DIR``):
    DIR/server.key          server public key: give it to every client
    DIR/server.key_secret   server key pair: stays on the backend machine
    DIR/allowed/NAME.key    public keys of the clients allowed to connect (the allow-list)
    DIR/NAME.key_secret     one client's key pair: give it to that client only
"""
from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

from ..errors import InputError

__all__ = ["ServerKeys", "generate_keys", "load_server_keys", "is_local_endpoint", "check_bind"]

log = logging.getLogger(__name__)

SERVER_NAME = "server"
ALLOWED_DIR = "allowed"


@dataclass(frozen=True, slots=True)
class ServerKeys:
    """The server's key pair and the folder of allowed client public keys."""

    public: bytes
    secret: bytes
    allowed_dir: Path


def generate_keys(directory: str | os.PathLike[str], clients: tuple[str, ...] = ("client",)) -> list[Path]:
    """Create the server key pair (kept if present) and one key pair per client name; returns new files."""
    root = Path(directory)
    allowed = root / ALLOWED_DIR
    allowed.mkdir(parents=True, exist_ok=True)
    created: list[Path] = []
    if not (root / f"{SERVER_NAME}.key_secret").exists():
        public, secret = zmq.auth.create_certificates(root, SERVER_NAME)
        created += [Path(public), Path(secret)]
    for name in clients:
        if not name.replace("-", "").replace("_", "").isalnum() or name == SERVER_NAME:
            raise InputError(f"client name {name!r} is invalid", hint="use letters, digits, - and _ (not 'server')")
        if (root / f"{name}.key_secret").exists():
            raise InputError(f"keys for client {name} already exist in {root}", hint="choose another --client name")
        with tempfile.TemporaryDirectory() as scratch:
            public, secret = zmq.auth.create_certificates(scratch, name)
            shutil.move(secret, root / f"{name}.key_secret")
            shutil.move(public, allowed / f"{name}.key")
        os.chmod(root / f"{name}.key_secret", 0o600)
        created += [allowed / f"{name}.key", root / f"{name}.key_secret"]
    os.chmod(root / f"{SERVER_NAME}.key_secret", 0o600)
    log.info("created %d key files in %s", len(created), root)
    return created


def load_server_keys(directory: str | os.PathLike[str]) -> ServerKeys:
    """The server keys of a keys folder; InputError when the folder is incomplete."""
    root = Path(directory)
    secret_file = root / f"{SERVER_NAME}.key_secret"
    allowed = root / ALLOWED_DIR
    if not secret_file.is_file():
        raise InputError(f"no {secret_file.name} in {root}", hint="create keys with `stillflow keys DIR`")
    public, secret = zmq.auth.load_certificate(secret_file)
    if secret is None:
        raise InputError(f"{secret_file} holds no secret key", hint="create keys with `stillflow keys DIR`")
    if not allowed.is_dir() or not any(allowed.glob("*.key")):
        raise InputError(f"no client public keys in {allowed}", hint="add one with `stillflow keys DIR --client NAME`")
    return ServerKeys(public=public, secret=secret, allowed_dir=allowed)


def is_local_endpoint(endpoint: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on a loopback address (127.0.0.0/8, ::1, localhost)."""
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp":
        return False
    host = rest.rsplit(":", 1)[0] if ":" in rest else rest
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", interface names and host names may reach other machines


def check_bind(endpoint: str, keys: ServerKeys | None) -> None:
    """Refuse a bind that other machines could reach unless CURVE keys are configured."""
    if keys is None and not is_local_endpoint(endpoint):
        raise InputError(f"binding {endpoint} would let other machines reach the backend without encryption",
                         hint="create keys with `stillflow keys DIR` and pass --keys DIR, "
                              "or bind tcp://127.0.0.1:PORT")
