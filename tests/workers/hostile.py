"""Hostile inputs for the webhook receiver: bodies, raw HTTP, and what a clean log looks like."""

from __future__ import annotations

import json
import logging
import socket
import time
from dataclasses import dataclass

DEEP = 10_000
SHUMEI_DEEP = 500
BT_ID = "vq-bt-hostile"


def nested_arrays(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def nested_objects(depth: int, inner: bytes = b"1") -> bytes:
    return b'{"a":' * depth + inner + b"}" * depth


def with_field(prefix: dict, name: str, raw_value: bytes) -> bytes:
    """``prefix`` as a JSON object with one more field whose value is ``raw_value`` as given."""
    head = json.dumps(prefix)[:-1].encode()
    return head + (b", " if prefix else b"") + json.dumps(name).encode() + b": " + raw_value + b"}"


@dataclass(frozen=True)
class Body:
    """One hostile body for one endpoint and the statuses a careful receiver may answer."""

    name: str
    raw: bytes
    allowed: tuple[int, ...] = (400,)
    content_type: str = "application/json"


def shumei_result(**fields) -> bytes:
    return json.dumps({"code": 1100, "btId": BT_ID, "requestId": "r-1", "riskLevel": "PASS"} | fields).encode()


COMMON = [  # every JSON endpoint
    Body("nested-10000-arrays", nested_arrays(DEEP)),
    Body("nested-10000-objects", nested_objects(DEEP)),
    Body("nan", b'{"code": NaN, "btId": "x", "Status": "Success"}'),
    Body("infinity-literal", b'{"code": Infinity, "btId": "x"}'),
    Body("overflowing-number", b'{"code": 1e999, "Code": 1e999, "btId": "x"}'),
    Body("not-utf8", b'{"code": 1100, "btId": "\xff\xfe"}'),
    Body("lone-surrogate", b'{"code": 1100, "btId": "\\ud800", "Status": "\\udfff"}'),
    Body("nul-in-string", b'{"code": 1100, "btId": "a\\u0000b", "Status": "Success\\u0000"}'),
    Body("top-level-array", b"[1, 2]"),
    Body("empty", b""),
    Body("truncated", b'{"code": 1100, "btId": "x"'),
]

SHUMEI_OPEN = COMMON + [
    Body("500-deep-object", with_field({"code": 1100, "btId": BT_ID}, "x", nested_objects(SHUMEI_DEEP))),
    Body("500-deep-array", with_field({"code": 1100, "btId": BT_ID}, "audioDetail", nested_arrays(SHUMEI_DEEP))),
    Body("bt-id-list", json.dumps({"code": 1100, "btId": [BT_ID]}).encode()),
    Body("bt-id-object", json.dumps({"code": 1100, "btId": {"a": 1}}).encode()),
    Body("bt-id-10k", json.dumps({"code": 1100, "btId": "b" * 10_000}).encode()),
    Body("no-ids", json.dumps({"code": 1100, "riskLevel": "PASS"}).encode()),
    Body("request-id-number", json.dumps({"code": 1903, "requestId": 5}).encode()),
]

SHUMEI_SIGNED = COMMON + [  # behind a valid token: the shapes the merge could not read
    Body("500-deep-object", with_field({"code": 1100, "btId": BT_ID}, "x", nested_objects(SHUMEI_DEEP))),
    Body("audio-detail-numbers", shumei_result(audioDetail=[1, 2])),
    Body("audio-detail-object", shumei_result(audioDetail={"a": 1})),
    Body("segment-detail-number", shumei_result(audioDetail=[{"riskLevel": "PASS", "riskDetail": 5}])),
    Body("segment-label-list", shumei_result(audioDetail=[{"riskLevel": "REJECT", "riskLabel1": ["porn"]}])),
    Body("audio-tags-number", shumei_result(audioTags=5)),
    Body("risk-level-list", shumei_result(riskLevel=["PASS"])),
    Body("audio-text-number", shumei_result(audioText=5)),
    Body("code-text", json.dumps({"code": "1100x", "btId": BT_ID}).encode()),
    Body("code-bool", json.dumps({"code": True, "btId": BT_ID}).encode()),
    Body("code-list", json.dumps({"code": [1100], "btId": BT_ID}).encode()),
    Body("bt-id-object", shumei_result(btId={"a": 1})),
    Body("bt-id-129", shumei_result(btId="b" * 129)),
]


def gme_result(**fields) -> bytes:
    return json.dumps({"Code": 0, "TaskId": "gme-hostile", "Status": "Success", "HitFlag": True} | fields).encode()


GME_SIGNED = COMMON + [
    Body("500-deep-scan-piece", with_field({"Status": "Success"}, "ScanPiece", nested_arrays(SHUMEI_DEEP))),
    Body("scan-piece-number", gme_result(ScanPiece=5)),
    Body("scan-piece-numbers", gme_result(ScanPiece=[1, 2])),
    Body("scan-detail-number", gme_result(ScanPiece=[{"HitFlag": True, "ScanDetail": 5}])),
    Body("main-type-object", gme_result(ScanPiece=[{"HitFlag": True, "MainType": {"a": 1}}])),
    Body("label-list", gme_result(ScanPiece=[{"HitFlag": True, "ScanDetail": [{"Label": ["x"]}]}])),
    Body("status-number", gme_result(Status=5)),
    Body("status-unknown", gme_result(Status="Maybe")),
    Body("task-id-object", gme_result(TaskId={"x": 1})),
    Body("task-id-300", gme_result(TaskId="t" * 300)),
    Body("code-text", gme_result(Code="abc")),
    Body("code-list", gme_result(Code=[0])),
]

ASR_SIGNED = COMMON + [
    Body("500-deep-object", with_field({"code": 0}, "x", nested_objects(SHUMEI_DEEP))),
    Body("code-list", json.dumps({"code": [0], "requestId": "1"}).encode()),
    Body("text-list", json.dumps({"code": 0, "requestId": "1", "text": ["a"]}).encode()),
    Body("request-id-object", json.dumps({"code": 0, "requestId": {"a": 1}}).encode()),
    Body("form-nul", b"code=0&requestId=1&text=a%00b", content_type="application/x-www-form-urlencoded"),
    Body("form-not-utf8", b"code=0&text=\xff", content_type="application/x-www-form-urlencoded"),
    Body("form-1000-fields", b"&".join(b"f%d=1" % i for i in range(1000)) + b"&code=0",
         content_type="application/x-www-form-urlencoded"),
    Body("form-code-overflow", b"code=" + b"9" * 5000, content_type="application/x-www-form-urlencoded"),
]

# Raw requests the HTTP parser refuses (or the router answers): a 4xx or a closed connection.
RAW_REQUESTS = {
    "negative-content-length": b"POST /callbacks/gme HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "content-length-and-chunked": (b"POST /callbacks/shumei HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                                   b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "unknown-method": b"BREW /callbacks/gme HTTP/1.1\r\nHost: x\r\n\r\n",
    "10kB-url": b"POST /callbacks/" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "500-headers": (b"POST /callbacks/gme HTTP/1.1\r\nHost: x\r\n"
                    + b"".join(b"X-%d: y\r\n" % i for i in range(500)) + b"\r\n"),
    "bad-chunk-size": (b"POST /callbacks/shumei HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"zz\r\nabc\r\n0\r\n\r\n"),
    "tls-client-hello": bytes.fromhex("16030100a5010000a10303") + b"\x00" * 64,
    "header-without-colon": b"POST /callbacks/gme HTTP/1.1\r\nHost: x\r\nbroken header\r\n\r\n",
    "http2-preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "huge-header-value": b"POST /callbacks/gme HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 20_000 + b"\r\n\r\n",
    "nul-in-path": b"POST /callbacks/gme\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    "get-a-callback": b"GET /callbacks/gme HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "no-such-path": b"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    "arabic-digits-check-id": ("POST /callbacks/asr/١٢٣/" + "0" * 32 + " HTTP/1.1\r\nHost: x\r\n"
                               "Content-Length: 0\r\nConnection: close\r\n\r\n").encode(),
    "19-digit-check-id": (b"POST /callbacks/shumei/1234567890123456789/" + b"0" * 32 + b" HTTP/1.1\r\n"
                          b"Host: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    "non-ascii-token": ("POST /callbacks/shumei/1/é" + " HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                        "Connection: close\r\n\r\n{}").encode(),
}


def raw_exchange(host: str, port: int, request: bytes, timeout: float = 10.0) -> bytes:
    """Send ``request`` as is; the bytes the server answered before closing (or ``timeout``)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(request)
        return _read_until_closed(sock, timeout)


def _read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    received, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
        if b"\r\n\r\n" in received and _complete(received):
            break
    return received


def _complete(received: bytes) -> bool:
    head, _, body = received.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return False


def status_of(answer: bytes) -> int | None:
    """The HTTP status of an answer, or None when the server closed without one."""
    if not answer.startswith(b"HTTP/"):
        return None
    return int(answer.split(b" ", 2)[1])


def slow_body(host: str, port: int, head: bytes, first: bytes, timeout: float) -> tuple[bytes, float]:
    """Send the head and the first bytes of a body, then nothing: what came back, and when."""
    started = time.monotonic()
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(head + first)
        answer = _read_until_closed(sock, timeout)
    return answer, time.monotonic() - started


def log_problems(records: list[logging.LogRecord]) -> list[str]:
    """What a receiver's log must never show after bad input: tracebacks and unhandled errors."""
    problems = []
    for record in records:
        text = record.getMessage()
        if record.exc_info or record.exc_text or "Unhandled exception" in text or "Traceback" in text \
                or "Error handling request" in text:
            problems.append(f"{record.name} {record.levelname}: {text[:200]}")
    return problems
