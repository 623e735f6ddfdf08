"""Tupu live speech-stream moderation: submit a stream, close it, verify signed callbacks.

Requests are signed with the customer's RSA private key: PKCS#1 v1.5 SHA-256 over
``"{secretId},{timestamp},{nonce}"``, base64 (:class:`TupuSigner`). Tupu signs what it
sends back the other way: ``{"json": "<string>", "signature": "<base64>"}`` verified
with Tupu's public key over the ``json`` string, before ``json`` is parsed
(:func:`verify_signed`).

Endpoints (seed 001), relative to the configured base URL:
``POST /v3/recognition/speech/stream/{secretId}`` and
``POST /v3/recognition/speech/stream/close/{secretId}``.

Idempotency: the vendor takes no client request id; its task id (``requestId``) is
minted on submit. ``forumId`` ("板块ID, 数据ID") is the one free-form id it echoes, so
the caller's key goes there and callbacks can be matched to jobs even when a
retried submit created a second task (which the caller should then close).
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from vendors import http
from vendors.errors import BadResponse, Disposition, InvalidInput, VendorError

VENDOR = "tupu"
SUBMIT_PATH = "/v3/recognition/speech/stream/{secret_id}"
CLOSE_PATH = "/v3/recognition/speech/stream/close/{secret_id}"
STREAM_SCHEMES = ("rtmp", "rtsp", "http", "https")  # RTMP, RTSP, HLS, HTTP-FLV
CALLBACK_VIOLATIONS, CALLBACK_ALL, CALLBACK_END, CALLBACK_ALL_AND_END = 0, 1, 2, 3
TASK_NAMES = {  # task ids from the vendor's SDK; a label reads "<task>:<label>" ("vulgar:1")
    "5c8213b9bc807806aab0a574": "vulgar",
    "5caee6b2a76925c55a09a6d2": "speech_review",
    "5ca1bd6b3872ecc9afb99132": "transcription",
    "5f59e4b71b29fa890e5472fb": "gender",
}


class SignatureError(VendorError):
    """A Tupu payload whose signature is missing, malformed or wrong."""

    def __init__(self, message: str) -> None:
        super().__init__(VENDOR, "bad_signature", message, disposition=Disposition.PERMANENT)

    def __reduce__(self):
        return (SignatureError, (self.message,))


def _private_key(pem: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the Tupu private key must be an RSA key")
    return key


def load_public_key(pem: bytes) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the Tupu public key must be an RSA key")
    return key


class TupuSigner:
    """RSA-SHA256 (PKCS#1 v1.5) request signature, base64."""

    def __init__(self, secret_id: str, private_key_pem: bytes) -> None:
        self.secret_id = secret_id
        self._key = _private_key(private_key_pem)

    def __repr__(self) -> str:
        return f"TupuSigner(secret_id={self.secret_id!r}, private_key='***')"

    def string_to_sign(self, timestamp: int, nonce: float | str) -> str:
        return f"{self.secret_id},{timestamp},{nonce}"

    def sign(self, timestamp: int, nonce: float | str) -> str:
        message = self.string_to_sign(timestamp, nonce).encode("utf-8")
        signature = self._key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode("ascii")

    def auth_fields(self, timestamp: int, nonce: int) -> dict[str, Any]:
        """``timestamp``, ``nonce`` and ``signature`` for a request body."""
        return {"timestamp": timestamp, "nonce": nonce, "signature": self.sign(timestamp, nonce)}


def verify_signed(payload: Any, public_key_pem: bytes | rsa.RSAPublicKey) -> dict[str, Any]:
    """Verify ``{"json": str, "signature": b64}`` and return the parsed ``json``."""
    if not isinstance(payload, dict) or not isinstance(payload.get("json"), str):
        raise SignatureError("payload is not a signed envelope")
    key = _as_public_key(public_key_pem)
    try:
        signature = base64.b64decode(payload.get("signature") or "", validate=True)
        key.verify(signature, payload["json"].encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except (binascii.Error, TypeError, InvalidSignature) as exc:
        raise SignatureError("signature does not verify") from exc
    return _parse_json(payload["json"])


def _as_public_key(key: bytes | rsa.RSAPublicKey) -> rsa.RSAPublicKey:
    return key if isinstance(key, rsa.RSAPublicKey) else load_public_key(key)


def _parse_json(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BadResponse(VENDOR, "signed json is not JSON") from exc
    if not isinstance(data, dict):
        raise BadResponse(VENDOR, "signed json is not an object")
    return data


def check_stream_url(url: str) -> None:
    if urlsplit(url).scheme.lower() not in STREAM_SCHEMES:
        raise InvalidInput(
            VENDOR, "unsupported_stream", "Tupu takes RTMP, RTSP, HLS or HTTP-FLV streams"
        )


def _integer(value: Any, name: str) -> int:
    """A number the vendor sends as an integer (or its text); anything else is malformed."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():  # False for inf and nan
        return int(value)
    if isinstance(value, str) and value.strip().removeprefix("-").isdigit():
        return int(value)
    raise BadResponse(VENDOR, f"{name} is not an integer")


def _text(value: Any, name: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadResponse(VENDOR, f"{name} is not text")
    return str(value)


def envelope_error(data: dict[str, Any]) -> VendorError | None:
    """Tupu's error envelope, ``{"error": {"code": ..., "message": ...}}`` (or a bare message),
    as a :class:`VendorError` with the vendor's code and message; None when there is none."""
    error = data.get("error")
    if error in (None, "", {}):
        return None
    if isinstance(error, str):
        return VendorError(VENDOR, "request_rejected", error)
    if not isinstance(error, dict):
        raise BadResponse(VENDOR, "error is not an object")
    code = error.get("code")
    return VendorError(VENDOR, "request_rejected", _text(error.get("message"), "error.message"),
                       code=None if code is None else _integer(code, "error.code"))


def error_for(data: dict[str, Any]) -> VendorError:
    """A failed answer: the seed lists no codes, so every one is permanent and kept verbatim."""
    enveloped = envelope_error(data)
    if enveloped is not None:
        return enveloped
    code = data.get("code")
    return VendorError(VENDOR, "request_rejected", _text(data.get("message"), "message"),
                       code=None if code is None else _integer(code, "code"))


@dataclass(frozen=True)
class TupuSubmitted:
    task_id: str  # Tupu's requestId: the stream task
    url: str
    forum_id: str | None
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class TupuEvent:
    """One callback: ``kind`` is "violation", "result" (callbackRules 1), "end" or "error"."""

    task_id: str
    kind: str
    code: int
    verdict: str | None
    labels: list[str]
    raw: dict[str, Any] = field(repr=False)
    message: str = ""  # the vendor's, for an error

    @property
    def abnormal_end(self) -> bool:
        return self.kind == "end" and self.code != 0

    def error(self) -> VendorError | None:
        """An "error" callback as a PERMANENT :class:`VendorError`, with the vendor's code and message."""
        if self.kind != "error":
            return None
        return VendorError(VENDOR, "stream_error", self.message, code=None if self.code == -1 else self.code,
                           request_id=self.task_id or None)


# -- what a speech says ---------------------------------------------------------------
# Speech review (语音转译审核) gives a string label ("Normal", "Porn", "Politics", "ADs", ...)
# with an ``action`` (block: violation, review: to review, pass); the other tasks give
# integer labels, 0 normal. "normal" and 0 are clean; ``review`` marks an uncertain finding.
CLEAN_LABELS = ("normal", "0")
ACTIONS = {"pass": "PASS", "review": "REVIEW", "block": "REJECT"}


@dataclass(frozen=True)
class Speech:
    label: str  # as the report shows it: "1", "porn"
    verdict: str


def read_speech(speech: dict[str, Any]) -> Speech:
    """One speech's label and verdict; :class:`BadResponse` when its shape is not Tupu's."""
    value = speech.get("label", 0)
    if isinstance(value, str) and not value.strip().removeprefix("-").isdigit():
        label = value.strip().lower()
    else:
        label = str(_integer(value, "label"))
    review = speech.get("review")
    if review is not None and not isinstance(review, bool):
        raise BadResponse(VENDOR, "review is not true or false")
    action = speech.get("action")
    if action is not None and not isinstance(action, str):
        raise BadResponse(VENDOR, "action is not text")
    if action and action.lower() in ACTIONS:  # the vendor's own decision
        return Speech(label, ACTIONS[action.lower()])
    if label in CLEAN_LABELS or not label:
        return Speech(label, "PASS")
    return Speech(label, "REVIEW" if review else "REJECT")


def _speeches(data: dict[str, Any]) -> list[tuple[str, Speech]]:
    """``(task name, speech)`` for every ``{"<task id>": {"speechs": [...]}}`` section; other
    sections (a transcription's ``texts``, ``customInfo``) are not judgements."""
    found = []
    for task_id, section in data.items():
        if not isinstance(section, dict) or "speechs" not in section:
            continue
        speechs = section["speechs"]
        if not isinstance(speechs, list) or not all(isinstance(s, dict) for s in speechs):
            raise BadResponse(VENDOR, f"{task_id}.speechs is not a list of objects")
        name = TASK_NAMES.get(task_id, task_id)
        found += [(name, read_speech(s)) for s in speechs]
    return found


def _verdict(pairs: list[tuple[str, Speech]]) -> str:
    verdicts = {speech.verdict for _, speech in pairs}
    return next((v for v in ("REJECT", "REVIEW") if v in verdicts), "PASS")


def _labels(pairs: list[tuple[str, Speech]]) -> list[str]:
    return list(dict.fromkeys(f"{name}:{s.label}" for name, s in pairs if s.verdict != "PASS"))


def _task_id(data: dict[str, Any]) -> str:
    """The stream task: ``requestId`` at the top, else the first speech's."""
    top = _text(data.get("requestId"), "requestId")
    if top:
        return top
    for section in data.values():
        speechs = section.get("speechs") if isinstance(section, dict) else None
        for speech in speechs if isinstance(speechs, list) else []:
            if isinstance(speech, dict) and speech.get("requestId"):
                return _text(speech["requestId"], "requestId")
    return ""


def parse_event(data: Any) -> TupuEvent:
    """A verified callback's parsed ``json`` → :class:`TupuEvent`; :class:`BadResponse` when
    its shape is not one Tupu sends (a code that is not an integer, a label of the wrong kind)."""
    if not isinstance(data, dict):
        raise BadResponse(VENDOR, "callback is not an object")
    task_id = _task_id(data)
    failed = envelope_error(data)
    if failed is not None:
        code = int(failed.code) if failed.code is not None else -1
        return TupuEvent(task_id, "error", code, None, [], data, failed.message)
    code = 0 if data.get("code") in (None, "") else _integer(data["code"], "code")
    if "status" in data:
        return TupuEvent(task_id, "end", code, None, [], data)
    if code != 0:
        return TupuEvent(task_id, "error", code, None, [], data, _text(data.get("message"), "message"))
    pairs = _speeches(data)
    verdict = _verdict(pairs)
    kind = "result" if verdict == "PASS" else "violation"
    return TupuEvent(task_id, kind, code, verdict, _labels(pairs), data)


def parse_callback(payload: dict[str, Any], public_key_pem: bytes | rsa.RSAPublicKey) -> TupuEvent:
    """Verify a callback envelope with Tupu's public key, then parse it."""
    return parse_event(verify_signed(payload, public_key_pem))


def first_result(data: dict[str, Any]) -> dict[str, Any]:
    """``result[0]`` of a submit or close answer; raises on a non-zero ``code`` or an error
    envelope, with the vendor's code and message."""
    code = data.get("code")
    if envelope_error(data) is not None or isinstance(code, bool) or code not in (0, "0"):
        raise error_for(data)
    results = data.get("result")
    if not isinstance(results, list) or not results or not isinstance(results[0], dict):
        raise BadResponse(VENDOR, "success without a result")
    if not results[0].get("requestId"):
        raise BadResponse(VENDOR, "result without a requestId")
    return results[0]


class TupuClient:
    """Submit and close streams; answers are verified when Tupu's public key is given."""

    def __init__(
        self,
        endpoint: str,
        signer: TupuSigner,
        *,
        public_key_pem: bytes | None = None,
        timeout: float = http.DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.time,
        rand: random.Random | None = None,
        before_send: Callable[[], None] | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.signer, self.timeout = signer, timeout
        self.before_send = before_send or (lambda: None)  # right before each request leaves
        self._public_key = load_public_key(public_key_pem) if public_key_pem else None
        self._clock, self._rand = clock, rand or random.Random()

    def __repr__(self) -> str:
        return f"TupuClient(endpoint={self.endpoint!r}, secret_id={self.signer.secret_id!r})"

    def _auth(self) -> dict[str, Any]:
        # An integer nonce, as the vendor's SDK sends: its text is the same in every language.
        return self.signer.auth_fields(int(self._clock()), self._rand.randint(1, 2**32 - 1))

    def stream_body(
        self,
        data_id: str | None,
        url: str,
        *,
        callback_url: str,
        callback_rules: int = CALLBACK_VIOLATIONS,
        return_pre_speech: bool = False,
        room_id: str | None = None,
        user_id: str | None = None,
        tasks: list[str] | None = None,
    ) -> dict[str, Any]:
        """The signed submit body (no I/O)."""
        check_stream_url(url)
        if callback_rules not in (0, 1, 2, 3):
            raise ValueError("callback_rules must be 0, 1, 2 or 3")
        stream = {
            "url": url,
            "callback": callback_url,
            "roomId": room_id,
            "userId": user_id,
            "forumId": data_id,
        }
        stream = {k: v for k, v in stream.items() if v is not None}
        stream |= {"callbackRules": callback_rules, "returnPreSpeech": return_pre_speech}
        return {
            "speechStream": [stream],
            **self._auth(),
            **({"tasks": list(tasks)} if tasks else {}),
        }

    def close_body(self, task_id: str) -> dict[str, Any]:
        return {"speechStream": [{"requestId": task_id}], **self._auth()}

    def submit_stream(
        self, data_id: str | None, url: str, *, callback_url: str, **options: Any
    ) -> TupuSubmitted:
        """Start moderating a live stream; ``data_id`` (the caller's key) goes as ``forumId``.

        ``options``: as for :meth:`stream_body` (callback_rules, return_pre_speech,
        room_id, user_id, tasks).
        """
        body = self.stream_body(data_id, url, callback_url=callback_url, **options)
        item = first_result(self._post(SUBMIT_PATH, body))
        return TupuSubmitted(str(item["requestId"]), url, data_id, item)

    def close_stream(self, task_id: str) -> str:
        """Stop a stream task; returns the vendor's status (``"closed"``)."""
        item = first_result(self._post(CLOSE_PATH, self.close_body(task_id)))
        return str(item.get("status") or "")

    def unwrap(self, body: Any) -> dict[str, Any]:
        """A response's data: verified when it is signed and Tupu's public key is configured."""
        if not isinstance(body, dict):
            raise BadResponse(VENDOR, "response is not an object")
        if "json" not in body or "signature" not in body:
            return body
        if self._public_key is None:
            return _parse_json(str(body["json"]))
        return verify_signed(body, self._public_key)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = self.endpoint + path.format(secret_id=self.signer.secret_id)
        payload = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        self.before_send()
        response = http.post(VENDOR, url, data=payload, headers=headers, timeout=self.timeout)
        return self.unwrap(response.json(VENDOR))
