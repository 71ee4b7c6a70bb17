"""CURVE keys from the preferences and a handshake probe that says why a Connect endpoint refuses us.

No ``bpy`` module use. A client whose keys do not fit gets no answer at all from ZeroMQ (the
handshake fails silently and the client only times out), so before the add-on connects in
Connect mode it opens one short-lived probe socket with the same keys and watches libzmq's
handshake events: success, the backend's ZAP refusal of our public key, a CURVE/NULL mismatch,
or a failed encrypted handshake (wrong server key) each become one clear line for the artist.

Thread and process contract:
  - ``check_handshake`` runs on the calling (main) thread and blocks about ``timeout`` seconds at most
    (0.5 s more when a second, keyless probe is needed); it closes its probe and monitor sockets
    before returning and sends no message to the backend.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import zmq
from zmq.utils.monitor import recv_monitor_message

from .lib import load

log = logging.getLogger(__name__)

__all__ = ["CurveKeys", "load_keys", "check_handshake"]

_errors = load("errors")
_client = load("client")

CurveKeys = tuple[bytes | None, tuple[bytes, bytes] | None]
"""(server public key, (client public, client secret)), both None for a backend without keys."""

_Z85_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#")
_EVENTS = (zmq.EVENT_CONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
           | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
_NO_DETAIL_TRIES = 2
"""Failed encrypted handshakes in a row (without a more specific event) that mean a wrong server key."""


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
        return _client.load_public_key(text)
    except (OSError, ValueError) as error:
        raise _errors.InputError(f"the Server Key file {text} is not a CURVE key file ({error})",
                                 hint="pick the backend's server.key (made by `stillflow keys`)") from None


def _client_keys(path: str) -> tuple[bytes, bytes]:
    """This computer's key pair from the Client Key File preference (a NAME.key_secret file)."""
    if not Path(path).is_file():
        raise _errors.InputError(f"the Client Key File {path} does not exist",
                                 hint="pick this computer's NAME.key_secret (made by `stillflow keys`)")
    try:
        return _client.load_key_pair(path)
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


def _verdict(endpoint: str, event: int, value: int, keys: CurveKeys, client_key_file: str,
             plain_works: bool) -> str:
    """The artist's one line for a failed handshake event."""
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return (f"the backend at {endpoint} does not accept this computer's key ({client_key_file} is not in its "
                f"allowed keys); run `stillflow keys DIR --client NAME` for the backend's keys folder and pick "
                f"NAME.key_secret as the Client Key File")
    mismatch = event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
    if keys[0] is None and (mismatch or event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL):
        return (f"the backend at {endpoint} requires CURVE keys; set the Server Key (its server.key) and the "
                f"Client Key File (your NAME.key_secret) in the Stillflow preferences")
    if mismatch or plain_works:
        return (f"the backend at {endpoint} does not use CURVE keys; clear the Server Key and the Client Key File "
                f"in the Stillflow preferences")
    if event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        return (f"the backend at {endpoint} rejected the encrypted handshake: the Server Key is not that "
                f"backend's server.key")
    return (f"the ZeroMQ handshake with {endpoint} failed (event {event:#x}, code {value:#x}); "
            f"check that a Stillflow backend of the same version listens there")


def _probe(endpoint: str, keys: CurveKeys, timeout: float) -> tuple[str, int, int]:
    """One probe's outcome: ("ok", 0, 0), ("failed", event, value), ("connected", 0, 0) or ("unreached", 0, 0).

    Connection-level trouble (refused, unreachable) only delays; the probe waits for a handshake
    verdict until ``timeout``. A failed encrypted handshake without detail must repeat before it counts,
    since a CURVE/NULL mismatch can also end that way when the backend hangs up first.
    """
    context = zmq.Context.instance()
    probe = context.socket(zmq.DEALER)
    probe.setsockopt(zmq.LINGER, 0)
    server_key, client_keys = keys
    if server_key is not None and client_keys is not None:
        probe.curve_serverkey = server_key
        probe.curve_publickey, probe.curve_secretkey = client_keys
    monitor = probe.get_monitor_socket(_EVENTS)
    connected, no_detail, failure = False, 0, None
    deadline = time.monotonic() + timeout
    try:
        probe.connect(endpoint)
        while (remaining := deadline - time.monotonic()) > 0 and monitor.poll(int(remaining * 1000) + 1):
            message = recv_monitor_message(monitor)
            event, value = int(message["event"]), int(message["value"])
            if event == zmq.EVENT_CONNECTED:
                connected = True
            elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                return "ok", 0, 0
            elif event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
                no_detail += 1
                failure = (event, value)
                if no_detail >= _NO_DETAIL_TRIES:
                    break
            else:
                failure = (event, value)
                break
    except zmq.ZMQError as error:
        raise _errors.BackendUnavailable(f"cannot connect to {endpoint}: {error}",
                                         hint="enter an endpoint such as tcp://gpu-box:5555") from None
    finally:
        probe.disable_monitor()
        monitor.close(linger=0)
        probe.close(linger=0)
    if failure is not None:
        return "failed", *failure
    return ("connected" if connected else "unreached"), 0, 0


def check_handshake(endpoint: str, keys: CurveKeys, *, timeout: float, client_key_file: str = "") -> None:
    """Connect a probe socket with ``keys`` and return once the backend completes the handshake.

    Raises:
        BackendUnavailable: nothing accepted the connection within ``timeout`` s, or the handshake
            failed (keys refused, keys missing or superfluous, wrong server key); one line each.
    """
    started = time.monotonic()
    outcome, event, value = _probe(endpoint, keys, timeout)
    if outcome == "ok":
        return
    if outcome == "failed":
        log.info("handshake with %s failed: event %#x value %#x", endpoint, event, value)
        plain_works = False
        if keys[0] is not None and event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            # wrong server key, or a backend without keys that hung up first: a plain probe tells them apart
            left = max(0.5, timeout - (time.monotonic() - started))
            plain_works = _probe(endpoint, (None, None), left)[0] == "ok"
        raise _errors.BackendUnavailable(_verdict(endpoint, event, value, keys, client_key_file, plain_works))
    if outcome == "connected":
        raise _errors.BackendUnavailable(f"{endpoint} accepted the connection but did not finish a ZeroMQ "
                                         f"handshake within {timeout:g} s; check that a Stillflow backend listens there")
    raise _errors.BackendUnavailable(f"no backend answers at {endpoint} (no connection within {timeout:g} s)",
                                     hint="start it with `stillflow serve` and check the endpoint")
