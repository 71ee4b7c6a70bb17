"""CURVE key files and a handshake probe that says why an endpoint does not answer.

No torch, no bpy: the add-on bundles this file. A client whose keys do not fit gets no answer
at all from ZeroMQ (the handshake fails silently and requests only time out), so a client that
hears nothing opens one short-lived probe socket with the same keys and watches libzmq's
handshake events: success, the backend's ZAP refusal of our public key, a CURVE/NULL mismatch,
or a failed encrypted handshake (wrong server key) each become one clear line.

Thread and process contract:
  - ``check_handshake`` runs on the calling thread and blocks ``timeout`` seconds at most (0.5 s
    more when a second, keyless probe is needed); it closes its probe and monitor sockets before
    returning and sends no message to the backend.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import zmq
from zmq.utils.monitor import recv_monitor_message

from ..errors import BackendUnavailable, InputError

__all__ = ["KeyNames", "API_NAMES", "CLI_NAMES", "load_public_key", "load_key_pair", "handshake_problem",
           "check_handshake"]

log = logging.getLogger(__name__)

_EVENTS = (zmq.EVENT_CONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
           | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
_NO_DETAIL_TRIES = 2
"""Failed encrypted handshakes in a row (without a more specific event) that mean a wrong server key."""


@dataclass(frozen=True, slots=True)
class KeyNames:
    """How the user sets the two keys, for messages: ``set {server} and {client}{where}``."""

    server: str
    client: str
    where: str = ""
    clear: str = "clear"


API_NAMES = KeyNames("server_key", "client_keys", " of the Client", "drop")
CLI_NAMES = KeyNames("--server-key", "--client-key", "", "leave out")


def load_public_key(key: bytes | str | os.PathLike[str]) -> bytes:
    """A Z85 CURVE public key given as the key itself or the path of a ``.key`` file."""
    if isinstance(key, bytes) and len(key) == 40:
        return key
    if isinstance(key, str) and len(key) == 40 and not os.path.exists(key):
        return key.encode("ascii")
    import zmq.auth

    public, _ = zmq.auth.load_certificate(os.fspath(key))
    return public


def load_key_pair(keys: tuple[bytes, bytes] | str | os.PathLike[str]) -> tuple[bytes, bytes]:
    """(public, secret) Z85 keys given as a pair or the path of a ``.key_secret`` file."""
    if isinstance(keys, tuple):
        return keys
    import zmq.auth

    public, secret = zmq.auth.load_certificate(os.fspath(keys))
    if secret is None:
        raise InputError(f"{keys} holds no secret key", hint="pass the client's .key_secret file")
    return public, secret


def _verdict(endpoint: str, event: int, value: int, keyed: bool, names: KeyNames, client_key_file: str,
             plain_works: bool) -> str:
    """The one line for a failed handshake event."""
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        which = f"{client_key_file} is" if client_key_file else "its public key is"
        return (f"the backend at {endpoint} does not accept this computer's key ({which} not in its "
                f"allowed keys); run `stillflow keys DIR --client NAME` for the backend's keys folder and use "
                f"NAME.key_secret as {names.client}")
    mismatch = event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
    if not keyed and (mismatch or event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL):
        return (f"the backend at {endpoint} requires CURVE keys; set {names.server} (its server.key) and "
                f"{names.client} (your NAME.key_secret){names.where}")
    if mismatch or plain_works:
        return (f"the backend at {endpoint} does not use CURVE keys; {names.clear} {names.server} and "
                f"{names.client}{names.where}")
    if event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        return (f"the backend at {endpoint} rejected the encrypted handshake: {names.server} is not that "
                f"backend's server.key")
    return (f"the ZeroMQ handshake with {endpoint} failed (event {event:#x}, code {value:#x}); "
            f"check that a Stillflow backend of the same version listens there")


def _probe(endpoint: str, server_key: bytes | None, client_keys: tuple[bytes, bytes] | None,
           timeout: float) -> tuple[str, int, int]:
    """One probe's outcome: ("ok", 0, 0), ("failed", event, value), ("connected", 0, 0) or ("unreached", 0, 0).

    Connection-level trouble (refused, unreachable) only delays; the probe waits for a handshake
    verdict until ``timeout``. A failed encrypted handshake without detail must repeat before it counts,
    since a CURVE/NULL mismatch can also end that way when the backend hangs up first.
    """
    probe = zmq.Context.instance().socket(zmq.DEALER)
    probe.setsockopt(zmq.LINGER, 0)
    if server_key is not None and client_keys is not None:
        probe.curve_serverkey = server_key
        probe.curve_publickey, probe.curve_secretkey = client_keys
    monitor = probe.get_monitor_socket(_EVENTS)
    connected, no_detail, failure = False, 0, None
    deadline = time.monotonic() + timeout
    try:
        if endpoint.startswith("tcp://["):
            probe.setsockopt(zmq.IPV6, 1)
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
        raise BackendUnavailable(f"cannot connect to {endpoint}: {error}",
                                 hint="give an endpoint such as tcp://gpu-box:5555") from None
    finally:
        probe.disable_monitor()
        monitor.close(linger=0)
        probe.close(linger=0)
    if failure is not None:
        return "failed", *failure
    return ("connected" if connected else "unreached"), 0, 0


def handshake_problem(endpoint: str, server_key: bytes | None, client_keys: tuple[bytes, bytes] | None, *,
                      timeout: float, names: KeyNames = API_NAMES, client_key_file: str = "") -> str | None:
    """Why the handshake with ``endpoint`` fails, in one line; None when it succeeds or nothing answered.

    Args:
        server_key, client_keys: Z85 keys (see ``load_public_key`` / ``load_key_pair``), both None
            for a backend without keys.
        names: how the caller's user sets the keys, used in the line.
        client_key_file: the key pair's file, named when the backend refuses it.
    """
    return _diagnose(endpoint, server_key, client_keys, timeout, names, client_key_file)[1]


def check_handshake(endpoint: str, server_key: bytes | None, client_keys: tuple[bytes, bytes] | None, *,
                    timeout: float, names: KeyNames = API_NAMES, client_key_file: str = "") -> None:
    """Connect a probe socket with these keys and return once the backend completes the handshake.

    Arguments as for ``handshake_problem``.

    Raises:
        BackendUnavailable: nothing accepted the connection within ``timeout`` s, or the handshake
            failed (keys refused, keys missing or superfluous, wrong server key); one line each.
    """
    outcome, problem = _diagnose(endpoint, server_key, client_keys, timeout, names, client_key_file)
    if problem is not None:
        raise BackendUnavailable(problem)
    if outcome == "connected":
        raise BackendUnavailable(f"{endpoint} accepted the connection but did not finish a ZeroMQ "
                                 f"handshake within {timeout:g} s; check that a Stillflow backend listens there")
    if outcome == "unreached":
        raise BackendUnavailable(f"no backend answers at {endpoint} (no connection within {timeout:g} s)",
                                 hint="start it with `stillflow serve` and check the endpoint")


def _diagnose(endpoint: str, server_key: bytes | None, client_keys: tuple[bytes, bytes] | None, timeout: float,
              names: KeyNames, client_key_file: str) -> tuple[str, str | None]:
    """The probe's outcome and, for a failed handshake, its one line."""
    started = time.monotonic()
    outcome, event, value = _probe(endpoint, server_key, client_keys, timeout)
    if outcome != "failed":
        return outcome, None
    log.info("handshake with %s failed: event %#x value %#x", endpoint, event, value)
    keyed = server_key is not None
    plain_works = False
    if keyed and event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        # wrong server key, or a backend without keys that hung up first: a plain probe tells them apart
        left = max(0.5, timeout - (time.monotonic() - started))
        plain_works = _probe(endpoint, None, None, left)[0] == "ok"
    return outcome, _verdict(endpoint, event, value, keyed, names, client_key_file, plain_works)
