"""Identify, verify and parse each vendor's callback; :mod:`workers.webhooks` stores and answers.

Every function here takes a :class:`Delivery` (raw body, query, path parameters) and
returns an :class:`Inbound` to store, or raises :class:`Refused` with an HTTP status
and a reason that is safe to log (never a signature, key or body).

- GME signs: ``Signatue`` (sic) query parameter, base64(HMAC-SHA1(SecretKey, "POST" + raw body)).
- Tupu signs: ``{"json": str, "signature": b64}`` verified with Tupu's RSA public key.
- ASR does not sign: its callback URL carries a token derived from our Tencent SecretKey
  and the check id (``tasks.moderation.callback_token``), compared in constant time.
- Shumei neither signs callbacks nor lets us put a secret in the callback URL per task,
  so a Shumei callback is *not authenticated*: anyone who can reach the receiver can
  post one. The limit: such a body is only stored, and only merged (state "received")
  when its ``btId`` names a check of ours that was submitted to Shumei; other ``btId``s are
  kept as "unknown" and never merged. ``btId``s are unguessable (uuid5 of batch, row and
  service), which makes forging a result for a real check hard but not impossible for
  someone who saw one; Shumei results are also polled, and the merge should prefer them.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from cryptography.hazmat.primitives.asymmetric import rsa

from config.settings import Settings
from tasks.moderation import callback_token
from vendors import asr, gme, shumei, tupu
from vendors.errors import BadResponse

SECRET_FIELDS = frozenset({"accesskey", "signature", "signatue", "secretkey"})


class Refused(Exception):
    """A callback that is not stored: an HTTP status and a loggable reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Delivery:
    raw: bytes
    query: Mapping[str, str]
    params: Mapping[str, str]  # path parameters
    content_type: str = ""


@dataclass(frozen=True)
class Inbound:
    vendor: str
    vendor_task_id: str | None
    body: dict[str, Any]  # parsed, secrets removed
    check_id: int | None = None  # named by the URL (ASR)
    must_match: bool = False  # no such check of ours: stored as "unknown", not merged


@dataclass(frozen=True)
class Verifiers:
    """The keys callbacks are checked with, loaded once when the receiver starts."""

    gme_key: str | None
    tupu_key: rsa.RSAPublicKey | None
    settings: Settings

    @classmethod
    def from_settings(cls, settings: Settings) -> Verifiers:
        key = settings.gme_callback_key.get_secret_value() if settings.gme_callback_key else ""
        pem = settings.tupu_public_key
        return cls(key or None, _load_public_key(pem) if pem else None, settings)


def _load_public_key(path: Path) -> rsa.RSAPublicKey:
    try:
        return tupu.load_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        message = f"VOXQUEUE_TUPU_PUBLIC_KEY: cannot load an RSA public key from {path}"
        raise RuntimeError(message) from exc


def scrub(value: Any) -> Any:
    """A copy without secret fields (``accessKey``, ``signature``...) at any depth."""
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items() if str(k).lower() not in SECRET_FIELDS}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def gme_view(d: Delivery, v: Verifiers) -> Inbound:
    if v.gme_key is None:
        raise Refused(403, "not_configured")
    signature = d.query.get(gme.SIGNATURE_PARAM)
    if not signature:
        raise Refused(401, "unsigned")
    if not gme.verify_callback(d.raw, signature, v.gme_key):
        raise Refused(403, "bad_signature")
    try:
        result = gme.parse_callback(d.raw)
    except BadResponse as exc:
        raise Refused(400, "malformed") from exc
    return Inbound(gme.VENDOR, result.task_id or None, scrub(result.raw))


def tupu_view(d: Delivery, v: Verifiers) -> Inbound:
    if v.tupu_key is None:
        raise Refused(403, "not_configured")
    envelope = _json_object(d.raw)
    if envelope is None or not envelope.get("signature"):
        raise Refused(401, "unsigned")
    try:
        data = tupu.verify_signed(envelope, v.tupu_key)
    except tupu.SignatureError as exc:
        raise Refused(403, "bad_signature") from exc
    except BadResponse as exc:
        raise Refused(400, "malformed") from exc
    event = tupu.parse_event(data)
    return Inbound(tupu.VENDOR, event.task_id or None, scrub(data))


def shumei_view(d: Delivery, v: Verifiers) -> Inbound:
    body = _json_object(d.raw)
    if body is None:
        raise Refused(400, "malformed")
    bt_id = body.get("btId")
    if not isinstance(bt_id, str) or not bt_id:
        raise Refused(400, "no_bt_id")
    return Inbound(shumei.VENDOR, bt_id, scrub(shumei.redact(body)), must_match=True)


def asr_view(d: Delivery, v: Verifiers) -> Inbound:
    secret = v.settings.tencent_secret_key.get_secret_value()
    if not secret:  # an HMAC under an empty key is a token anyone can compute
        raise Refused(403, "not_configured")
    check_id = int(d.params["check_id"])
    expected = callback_token(asr.VENDOR, check_id, v.settings)
    if not hmac.compare_digest(expected.encode(), d.params["token"].encode()):
        raise Refused(403, "bad_token")
    body = _form_or_json(d)
    try:
        result = asr.parse_callback(body)
    except BadResponse as exc:
        raise Refused(400, "malformed") from exc
    return Inbound(asr.VENDOR, result.request_id or None, scrub(body), check_id, must_match=True)


def _form_or_json(d: Delivery) -> dict[str, Any]:
    if "json" in d.content_type or d.raw.lstrip().startswith(b"{"):
        body = _json_object(d.raw)
        if body is None:
            raise Refused(400, "malformed")
        return body
    try:
        return dict(parse_qsl(d.raw.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError as exc:
        raise Refused(400, "malformed") from exc
