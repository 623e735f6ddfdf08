"""Helpers for the moderation sandbox tests: a callback receiver, keys, audio, waiting."""

from __future__ import annotations

import functools
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.core import SandboxConfig
from sandbox.moderation import verdict_for
from tests.sandbox.helpers import pcm, wav
from vendors.tc3 import Credentials


@dataclass(frozen=True)
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


Respond = Callable[[Received], tuple[int, bytes]]


def ok_json(received: Received) -> tuple[int, bytes]:
    return 200, b'{"code": 0}'


class Receiver:
    """A callback receiver on a real socket that records every POST.

    ``script`` answers the first requests in order; then ``respond`` decides.
    """

    def __init__(self, respond: Respond = ok_json, script: list[tuple[int, bytes]] | None = None):
        self.respond, self.script = respond, list(script or [])
        self.received: list[Received] = []
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def wait(self, n: int, timeout: float = 5.0) -> list[Received]:
        """The first ``n`` requests, once they have arrived."""
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.received) >= n, timeout), (
                f"{len(self.received)} of {n} callbacks arrived"
            )
            return self.received[:n]

    def _answer(self, received: Received) -> tuple[int, bytes]:
        with self._changed:
            self.received.append(received)
            self._changed.notify_all()
            return self.script.pop(0) if self.script else self.respond(received)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = urlsplit(self.path)
                received = Received(
                    parts.path, dict(parse_qsl(parts.query)), dict(self.headers), body
                )
                status, reply = receiver._answer(received)
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


def wait_until(check: Callable[[], Any], timeout: float = 5.0, every: float = 0.02) -> Any:
    """Call ``check`` until it returns something truthy (returned) or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, "timed out waiting"
            return value
        time.sleep(every)


def callbacks(sandbox: Any, vendor: str) -> dict[str, int]:
    """The vendor's callback counts from the sandbox's stats, zeros included."""
    counts = sandbox.stats()["callbacks"].get(vendor, {})
    return {k: counts.get(k, 0) for k in ("delivered", "failed_attempts", "gave_up")}


def callbacks_once(sandbox: Any, vendor: str, outcome: str) -> dict[str, int]:
    """The counts, once ``outcome`` ("delivered" or "gave_up") has happened."""
    return wait_until(lambda: callbacks(sandbox, vendor)[outcome] and callbacks(sandbox, vendor))


# -- keys and audio ------------------------------------------------------------------
@functools.cache
def rsa_key(name: str) -> rsa.RSAPrivateKey:
    """One generated key per name for the whole test run ("client", "server", "other")."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(name: str) -> bytes:
    return rsa_key(name).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(name: str) -> bytes:
    return (
        rsa_key(name)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def moderation_config(credentials: Credentials, **overrides: Any) -> SandboxConfig:
    """A sandbox with every moderation vendor configured from fresh secrets."""
    settings: dict[str, Any] = {
        "tencent_secret_id": credentials.secret_id,
        "tencent_secret_key": credentials.secret_key,
        "shumei_access_key": secrets.token_hex(16),
        "gme_biz_id": 1400000000 + secrets.randbelow(10**6),
        "gme_callback_key": secrets.token_hex(16),
        "asr_appid": str(1250000000 + secrets.randbelow(10**6)),
        "asr_secret_id": "AKID" + secrets.token_hex(16),
        "asr_secret_key": secrets.token_hex(16),
        "tupu_secret_id": secrets.token_hex(12),
        "tupu_client_public_key": public_pem("client").decode(),
        "tupu_server_private_key": private_pem("server").decode(),
        "callback_retry_s": 0.05,
        "tupu_stream_duration_s": 30.0,
    }
    return SandboxConfig(**(settings | overrides))


def audio_with(verdict: str, kind: str = "wav", labels: int | None = None) -> bytes:
    """Deterministic audio that the sandbox judges ``verdict`` (with that many labels)."""
    for seed in range(10_000):
        audio = wav(800, seed) if kind == "wav" else pcm(1600, seed)
        found, found_labels = verdict_for(audio, "gme")
        if found == verdict and labels in (None, len(found_labels)):
            return audio
    raise AssertionError(f"no audio found with {verdict}")


def stream_with(verdict: str) -> str:
    """An RTMP URL whose bytes the sandbox judges ``verdict``."""
    for i in range(10_000):
        url = f"rtmp://live.example/room/{i}"
        if verdict_for(url.encode(), "tupu")[0] == verdict:
            return url
    raise AssertionError(f"no stream found with {verdict}")


def media(tmp_path: Path, name: str, audio: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(audio)
    return path
