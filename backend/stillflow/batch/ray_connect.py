"""Reaching a Ray cluster: join one at an address, or start one here on loopback only, and notice when it goes away.

``--address local`` starts Ray on this machine bound to and advertising 127.0.0.1 only, with a
random token in this process's environment (token auth on, nothing written to ``~/.ray``).
``auto`` joins the cluster that RAY_ADDRESS or ``ray start`` on this machine names and never
starts one silently. ``HOST:PORT`` is checked for a listener first, so a wrong address fails in
seconds with one line instead of Ray's minutes of retries.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import threading
import time
from typing import Any, Iterator

from ..errors import BackendUnavailable, InputError
from .work import one_line

__all__ = ["require_ray", "connect", "start_local_ray", "gcs_address", "ClusterWatch", "ClusterLost", "LOOPBACK"]

LOOPBACK = "127.0.0.1"
_INSTALL_HINT = "install it with: pip install 'stillflow[ray]' (or pip install ray)"
_PROBE_S = 5.0
_TOKEN_HINT = ("give this process the cluster's token: RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) "
               "as on the head (`ray get-auth-token` there prints it)")


def require_ray() -> Any:
    """The ray module, or InputError (exit 2) saying how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError("--executor ray needs Ray, which is not installed", hint=_INSTALL_HINT) from None
    return ray


@contextlib.contextmanager
def _keep_sigterm() -> Iterator[None]:
    """Undo ray.init's SIGTERM handler (sys.exit with a stack dump): a scheduler's SIGTERM stays Ctrl+C."""
    previous = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _loopback_node() -> Iterator[None]:
    """Let ray.init keep 127.0.0.1 and localhost as they are (it rewrites them to the network address)."""
    from ray._private import ray_constants

    # Ray 2.x resolves "127.0.0.1" through get_node_ip_address(), which returns loopback only when
    # clusters are disabled (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, read once at import); with node
    # address 127.0.0.1 the GCS and raylet also listen on 127.0.0.1 instead of every interface.
    enabled = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = enabled


def _private_token() -> None:
    """Give a Ray started here a fresh token in the environment, so Ray writes none to ~/.ray/auth_token."""
    if not any(os.environ.get(name) for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")):
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)


def start_local_ray(*, num_cpus: int | None = None, num_gpus: int | None = None, temp_dir: str | None = None,
                    object_store_memory: int | None = None) -> str:
    """Start Ray in this process on 127.0.0.1 only (token auth, no ~/.ray state); returns the GCS address."""
    ray = require_ray()
    _private_token()
    with _keep_sigterm(), _loopback_node():
        context = ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, log_to_driver=False,
                           object_store_memory=object_store_memory, _node_ip_address=LOOPBACK, _temp_dir=temp_dir)
    return context.address_info["gcs_address"]


def _reachable(address: str, timeout: float = _PROBE_S) -> str | None:
    """None when something listens at HOST:PORT, else why not (one phrase)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return "it is not HOST:PORT"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return None
    except socket.gaierror:
        return f"host {host} is unknown"
    except socket.timeout:
        return f"no answer within {timeout:.0f} s"
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def connect(address: str | None) -> bool:
    """Join the cluster at ``address`` (``auto``: the one RAY_ADDRESS or ``ray start`` here names;
    ``local``: start one here on loopback). Returns True when this call started Ray (the caller shuts it down).

    An already initialised Ray in this process is used as it is.
    """
    ray = require_ray()
    if ray.is_initialized():
        return False
    if address in (None, "", "local"):
        start_local_ray()
        return True
    if address != "auto" and "://" not in address:
        why = _reachable(address)
        if why is not None:
            raise InputError(f"cannot reach a Ray cluster at {address}: {why}",
                             hint="pass the head's GCS address (`ray status` on the head shows it), e.g. 10.0.0.5:6379")
    try:
        with _keep_sigterm(), _loopback_node():  # else "127.0.0.1:PORT" is rewritten to the network address
            ray.init(address=address, log_to_driver=False)
    except ConnectionError as exc:
        if address == "auto":
            raise InputError("no running Ray cluster found (--address auto looks at RAY_ADDRESS and `ray start` on "
                             "this machine)", hint="start one with `ray start --head`, pass its HOST:PORT, or pass "
                                                   "--address local to start one here") from None
        raise InputError(f"the Ray cluster at {address} answers but refused this process ({one_line(exc)})"[:300],
                         hint=f"if it uses token authentication (Ray's default), {_TOKEN_HINT}; every node and this "
                              "machine need the same Ray and Python versions") from None
    except Exception as exc:  # Ray's AuthenticationError, version mismatches (RuntimeError), bad addresses
        if type(exc).__name__ == "AuthenticationError" or "token" in str(exc).lower():
            raise InputError(f"the Ray cluster at {address} refused this process's authentication token",
                             hint=_TOKEN_HINT) from None
        raise InputError(f"cannot connect to the Ray cluster at {address}: {one_line(exc)}"[:400],
                         hint="every node and this machine need the same Ray, Python and stillflow versions") from None
    return True


def gcs_address() -> str:
    """HOST:PORT of the connected cluster's head (GCS)."""
    return require_ray().get_runtime_context().gcs_address


class ClusterLost(BackendUnavailable):
    """The Ray cluster's head stopped answering mid-batch (exit 4)."""


class ClusterWatch:
    """Notices that the head went away: its GCS port stops accepting connections for ``grace_s``.

    Ray's own driver waits about a minute and then exits the process; checking the port lets the
    batch record what it has and stop with its own message first.
    """

    def __init__(self, address: str, *, every_s: float = 1.0, grace_s: float = 10.0) -> None:
        self.address = address
        self.every_s = every_s
        self.grace_s = grace_s
        self._last_check = 0.0
        self._unreachable_since: float | None = None

    def check(self) -> None:
        """Raise BackendUnavailable once the head has been unreachable for ``grace_s`` (cheap between checks)."""
        now = time.monotonic()
        if now - self._last_check < self.every_s:
            return
        self._last_check = now
        why = _reachable(self.address, timeout=min(2.0, self.grace_s))
        if why is None:
            self._unreachable_since = None
            return
        if self._unreachable_since is None:
            self._unreachable_since = now
        elif now - self._unreachable_since >= self.grace_s:
            raise ClusterLost(f"the Ray cluster went away: its head {self.address} has not answered for "
                              f"{self.grace_s:.0f} s ({why})",
                              hint="restart the cluster and run the same command again; finished items are kept")
