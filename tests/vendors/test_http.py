"""``vendors.http`` against a real socket whose server misbehaves the ways networks do."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from vendors import http
from vendors.errors import Disposition, TransportError


def _serve(behave: Callable[[socket.socket], None]) -> Iterator[str]:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            with conn:
                behave(conn)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    listener.close()
    thread.join(timeout=5)


def _request_bytes(conn: socket.socket, flags: int = 0) -> None:
    """Receive the whole request (or with MSG_PEEK: wait until it is all buffered, unread)."""
    data = b""
    while True:
        data = conn.recv(65536, flags) if flags else data + conn.recv(65536)
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length"))
            if len(body) >= length:
                return


def _close(conn: socket.socket) -> None:
    """Reads the request and closes, answering nothing (a server or proxy dropping it)."""
    _request_bytes(conn)


def _reset(conn: socket.socket) -> None:
    """Closes with the request unread: the kernel answers the client with a reset."""
    _request_bytes(conn, socket.MSG_PEEK)


def _cut_short(conn: socket.socket) -> None:
    _request_bytes(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{\"code\"")


@pytest.mark.parametrize(("behave", "cause"), [
    (_close, "RemoteDisconnected: Remote end closed connection without response"),
    (_reset, "ConnectionResetError"),
    (_cut_short, "IncompleteRead"),
])  # fmt: skip
def test_a_broken_connection_names_its_cause_and_is_retryable(behave, cause):
    for base in _serve(behave):
        with pytest.raises(TransportError) as caught:
            http.post("asr", f"{base}/asr/v1/1?token=s3cr3t-t0ken", data=b"audio", timeout=5)
    error = caught.value
    assert str(error).startswith("asr: connection failed: ProtocolError (")
    assert cause in str(error)
    assert error.disposition is Disposition.RETRY
    assert "s3cr3t-t0ken" not in str(error) and "127.0.0.1" not in str(error)


def test_nothing_listening_is_a_connection_failure():
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]  # closed again below: nothing listens there
    with pytest.raises(TransportError) as caught:
        http.post("gme", f"http://127.0.0.1:{port}/", data=b"{}", timeout=5)
    assert "connection failed: NewConnectionError" in str(caught.value)
    assert caught.value.disposition is Disposition.RETRY
