"""A notification receiver for the tests: a real HTTP server in a thread that verifies every
signature the way the README tells a receiver to, and records what it got."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def verify(secret: str, body: bytes, header: str, tolerance: int = 300) -> bool:
    """The README's verification, as a receiver would write it."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    timestamp, signature = fields.get("t", ""), fields.get("v1", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


@dataclass
class Receiver:
    """``status()`` decides each answer; ``accepted`` holds the events answered 2xx, ``attempts``
    every request (event id, answer), ``forged`` the requests whose signature did not verify."""

    secret: str = ""
    url: str = ""
    status: object = lambda: 200
    accepted: list[dict] = field(default_factory=list)
    attempts: list[tuple[str, int]] = field(default_factory=list)
    forged: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    ready: threading.Event = field(default_factory=threading.Event)  # set once the secret is known

    def know(self, secret: str) -> None:
        self.secret = secret
        self.ready.set()

    def accepted_ids(self) -> list[str]:
        with self.lock:
            return [e["id"] for e in self.accepted]


def serve(receiver: Receiver) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver.ready.wait(10)
            signed = verify(receiver.secret, body, self.headers.get("Voxqueue-Signature", ""))
            status = receiver.status() if signed else 400
            event = json.loads(body)
            with receiver.lock:
                receiver.forged += not signed
                receiver.attempts.append((event["id"], status))
                if 200 <= status < 300:
                    receiver.accepted.append(event)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/hooks/voxqueue"
