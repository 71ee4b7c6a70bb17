"""addon/core/handshake.py: CURVE key preferences and the handshake probe, against real backend processes.

Plain Python (either environment); a backend started with ``stillflow serve --keys`` and one
without keys run with ``<repo>/.venv/bin/python``; the keys come from ``stillflow keys``.
"""
from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from addon.core import backend, handshake
from addon.core.lib import load

_errors = load("errors")
_launcher = load("link.launcher")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def keys(backend_python: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Key files made by `stillflow keys`: the backend's folder (client 'artist') and a stranger's."""
    root = tmp_path_factory.mktemp("keys")
    for folder, client in (("backend", "artist"), ("other", "stranger")):
        done = subprocess.run([backend_python, "-m", "stillflow", "keys", str(root / folder), "--client", client],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    return {"dir": str(root / "backend"), "server": str(root / "backend" / "server.key"),
            "client": str(root / "backend" / "artist.key_secret"),
            "other_server": str(root / "other" / "server.key"), "stranger": str(root / "other" / "stranger.key_secret")}


@pytest.fixture(scope="module")
def endpoints(backend_python: str, keys: dict[str, str],
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Endpoints of a backend with CURVE keys ('keyed') and one without ('plain')."""
    keyed = _launcher.start_local_backend(backend_python, timeout=120, extra_args=("--keys", keys["dir"]),
                                          server_key=keys["server"], client_keys=keys["client"],
                                          results_dir=tmp_path_factory.mktemp("keyed-results"))
    plain = _launcher.start_local_backend(backend_python, timeout=120,
                                          results_dir=tmp_path_factory.mktemp("plain-results"))
    yield {"keyed": keyed.endpoint, "plain": plain.endpoint}
    keyed.stop()
    plain.stop()


def _check(endpoint: str, server: str = "", client: str = "") -> None:
    """Load the keys as the preferences name them and probe ``endpoint``."""
    handshake.check_handshake(endpoint, handshake.load_keys(server, client), timeout=3.0, client_key_file=client)


class TestCheckHandshake:
    def test_feature_accepted(self, endpoints: dict[str, str], keys: dict[str, str]) -> None:
        _check(endpoints["keyed"], keys["server"], keys["client"])
        _check(endpoints["plain"])

    @pytest.mark.parametrize(("target", "server", "client", "message"), [
        ("keyed", "server", "stranger", "the backend at {endpoint} does not accept this computer's key \\({stranger} "
                                        "is not in its allowed keys\\)"),
        ("keyed", "other_server", "client", "the backend at {endpoint} rejected the encrypted handshake: the Server "
                                            "Key is not that backend's server.key$"),
        ("keyed", "", "", "the backend at {endpoint} requires CURVE keys; set the Server Key"),
        ("plain", "server", "client", "the backend at {endpoint} does not use CURVE keys; clear the Server Key"),
    ], ids=["client-not-allowed", "wrong-server-key", "keys-missing", "keys-superfluous"])
    def test_exception_refused(self, endpoints: dict[str, str], keys: dict[str, str], target: str, server: str,
                               client: str, message: str) -> None:
        endpoint = endpoints[target]
        pattern = message.format(endpoint=re.escape(endpoint), **{k: re.escape(v) for k, v in keys.items()})
        for _ in range(5):  # the backend may hang up before or after libzmq reports the reason: same line each time
            with pytest.raises(_errors.BackendUnavailable, match=pattern):
                _check(endpoint, keys.get(server, server), keys.get(client, client))

    def test_exception_nobody_listening(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            endpoint = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
        with pytest.raises(_errors.BackendUnavailable, match=f"no backend answers at {re.escape(endpoint)} "
                                                             "\\(no connection within 0.3 s\\); start it"):
            handshake.check_handshake(endpoint, (None, None), timeout=0.3)

    def test_exception_bad_endpoint(self) -> None:
        with pytest.raises(_errors.BackendUnavailable, match="cannot connect to gpu-box:5555: "):
            handshake.check_handshake("gpu-box:5555", (None, None), timeout=0.3)


class TestLoadKeys:
    def test_feature(self, keys: dict[str, str]) -> None:
        server, (public, secret) = handshake.load_keys(keys["server"], keys["client"])
        assert len(server) == len(public) == len(secret) == 40
        assert handshake.load_keys(server.decode(), keys["client"])[0] == server  # Z85 text works too
        assert handshake.load_keys("", "") == (None, None)

    @pytest.mark.parametrize(("server", "client", "message"), [
        ("server", "", "the Client Key File is empty; CURVE needs both"),
        ("", "client", "the Server Key is empty; CURVE needs both"),
        ("server", "{tmp}/gone.key_secret", "the Client Key File {tmp}/gone.key_secret does not exist"),
        ("server", "{tmp}/junk", "the Client Key File {tmp}/junk is not a CURVE key file"),
        ("{tmp}/junk", "client", "the Server Key file {tmp}/junk is not a CURVE key file"),
        ("{tmp}/gone.key", "client", "the Server Key '{tmp}/gone.key' is neither a 40-character key nor an existing"),
        ("é" * 40, "client", "the Server Key is not a valid Z85 key"),
    ])
    def test_exception(self, keys: dict[str, str], tmp_path: Path, server: str, client: str, message: str) -> None:
        (tmp_path / "junk").write_text("not a key\n")
        server, client = (keys.get(v, v).format(tmp=tmp_path) for v in (server, client))
        with pytest.raises(_errors.InputError, match=re.escape(message.format(tmp=tmp_path))):
            handshake.load_keys(server, client)

    def test_exception_public_key_as_client_key(self, keys: dict[str, str]) -> None:
        public = str(Path(keys["dir"]) / "allowed" / "artist.key")
        with pytest.raises(_errors.InputError, match="holds no secret key; pick NAME.key_secret, not the public"):
            handshake.load_keys(keys["server"], public)


class TestConnection:
    def test_feature_remote_with_keys(self, endpoints: dict[str, str], keys: dict[str, str]) -> None:
        connection = backend.Connection()
        config = backend.BackendConfig(mode="REMOTE", endpoint=endpoints["keyed"], server_key=keys["server"],
                                       client_key_file=keys["client"], timeout=1.0)
        try:
            assert connection.hello(config)["curve"] is True
        finally:
            connection.close()

    def test_exception_refused_key_closes(self, endpoints: dict[str, str], keys: dict[str, str]) -> None:
        connection = backend.Connection()
        config = backend.BackendConfig(mode="REMOTE", endpoint=endpoints["keyed"], server_key=keys["server"],
                                       client_key_file=keys["stranger"], timeout=1.0)
        with pytest.raises(_errors.BackendUnavailable, match="does not accept this computer's key"):
            connection.hello(config)
        assert connection.client is None
        good = backend.BackendConfig(mode="REMOTE", endpoint=endpoints["keyed"], server_key=keys["server"],
                                     client_key_file=keys["client"], timeout=1.0)
        try:
            assert connection.hello(good)["curve"] is True  # fixing the preference is enough
        finally:
            connection.close()
