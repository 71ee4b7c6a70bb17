"""CURVE keys from the preferences, and the handshake check that says why a Connect endpoint refuses us.

No ``bpy`` module use. The probe itself is the backend package's ``stillflow.handshake`` (bundled);
this module reads the two preferences and words its messages with the preferences' names.

Thread and process contract:
  - ``check_handshake`` runs on the calling (main) thread and blocks about ``timeout`` seconds at most
    (0.5 s more when a second, keyless probe is needed); it closes its probe and monitor sockets
    before returning and sends no message to the backend.
"""
from __future__ import annotations

import os
from pathlib import Path

from .lib import load

__all__ = ["CurveKeys", "load_keys", "check_handshake"]

_errors = load("errors")
_handshake = load("link.handshake")

CurveKeys = tuple[bytes | None, tuple[bytes, bytes] | None]
"""(server public key, (client public, client secret)), both None for a backend without keys."""

_Z85_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#")
PREFERENCE_NAMES = _handshake.KeyNames("the Server Key", "the Client Key File", " in the Stillflow preferences")
"""How the artist sets the keys, for the probe's messages."""


def _server_key(text: str) -> bytes:
    """The server public key from the Server Key preference: 40 Z85 characters or a .key file."""
    if len(text) == 40 and not os.path.exists(text):
        if not set(text) <= _Z85_CHARS:
            raise _errors.InputError("the Server Key is not a valid Z85 key",
                                     hint="paste the 40 characters of the backend's server.key or pick that file")
        return text.encode("ascii")
    if not os.path.isfile(text):
        raise _errors.InputError(f"the Server Key {text!r} is neither a 40-character key nor an existing file",
                                 hint="pick the backend's server.key (made by `stillflow keys`)")
    try:
        return _handshake.load_public_key(text)
    except (OSError, ValueError) as error:
        raise _errors.InputError(f"the Server Key file {text} is not a CURVE key file ({error})",
                                 hint="pick the backend's server.key (made by `stillflow keys`)") from None


def _client_keys(path: str) -> tuple[bytes, bytes]:
    """This computer's key pair from the Client Key File preference (a NAME.key_secret file)."""
    if not Path(path).is_file():
        raise _errors.InputError(f"the Client Key File {path} does not exist",
                                 hint="pick this computer's NAME.key_secret (made by `stillflow keys`)")
    try:
        return _handshake.load_key_pair(path)
    except _errors.InputError:
        raise _errors.InputError(f"the Client Key File {path} holds no secret key",
                                 hint="pick NAME.key_secret, not the public NAME.key") from None
    except (OSError, ValueError) as error:
        raise _errors.InputError(f"the Client Key File {path} is not a CURVE key file ({error})",
                                 hint="pick this computer's NAME.key_secret (made by `stillflow keys`)") from None


def load_keys(server_key: str, client_key_file: str) -> CurveKeys:
    """The CURVE keys the preferences name (both empty = no keys); InputError names the preference at fault."""
    if not server_key and not client_key_file:
        return None, None
    if not server_key or not client_key_file:
        missing = "Server Key" if not server_key else "Client Key File"
        raise _errors.InputError(f"the {missing} is empty; CURVE needs both the Server Key and the Client Key File",
                                 hint="set both in the Stillflow preferences, or neither for a backend without keys")
    return _server_key(server_key), _client_keys(client_key_file)


def check_handshake(endpoint: str, keys: CurveKeys, *, timeout: float, client_key_file: str = "") -> None:
    """Connect a probe socket with ``keys`` and return once the backend completes the handshake.

    Raises:
        BackendUnavailable: nothing accepted the connection within ``timeout`` s, or the handshake
            failed (keys refused, keys missing or superfluous, wrong server key); one line each,
            naming the preference to change.
    """
    server_key, client_keys = keys
    _handshake.check_handshake(endpoint, server_key, client_keys, timeout=timeout, names=PREFERENCE_NAMES,
                               client_key_file=client_key_file)
