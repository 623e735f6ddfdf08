"""Identify, verify and parse each vendor's callback; :mod:`workers.webhooks` stores and answers.

Every function here takes a :class:`Delivery` (raw body, query, path parameters) and
returns an :class:`Inbound` to store (or a :class:`Signal`), or raises :class:`Refused`
with an HTTP status and a reason that is safe to log (never a signature, key or body).
Bodies are parsed by :mod:`vendors.safejson` (bounded nesting, finite numbers, storable
text) and then exactly as the merge will parse them, so what the merge could not read
is refused here with a 400 instead of stored.

- GME signs: ``Signatue`` (sic) query parameter, base64(HMAC-SHA1(SecretKey, "POST" + raw body)).
- Tupu signs: ``{"json": str, "signature": b64}`` verified with Tupu's RSA public key.
- ASR and Shumei do not sign: each check's callback URL carries a token of ours
  (``/callbacks/{vendor}/{check_id}/{token}``, :func:`tasks.keys.callback_token`, under a
  key derived from the deployment's secret), compared in constant time.
- A Shumei callback without the token (``/callbacks/shumei``: checks submitted before the
  token existed, or anyone at all) is *not authenticated*, so its body is never taken as a
  result and never stored: it is a :class:`Signal` naming a ``btId`` (or, for a failure,
  which carries none, a ``requestId``) whose result voxqueue then asks Shumei for.
"""

from __future__ import annotations

import binascii
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from cryptography.hazmat.primitives.asymmetric import rsa

from config.settings import Settings
from tasks import keys
from vendors import asr, gme, safejson, shumei, tupu
from vendors.errors import BadResponse, VendorError

SECRET_FIELDS = frozenset({"accesskey", "signature", "signatue", "secretkey"})
MAX_TASK_ID = 256  # the column that holds a vendor's task id
MAX_FORM_FIELDS = 64
# What a parser may raise on a body of an unexpected shape, besides BadResponse.
SHAPE_ERRORS = (BadResponse, KeyError, TypeError, ValueError, AttributeError, OverflowError, RecursionError)


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
    check_id: int | None = None  # named by the URL (ASR, Shumei)
    must_match: bool = False  # no such check of ours: stored as "unknown", not merged


@dataclass(frozen=True)
class Signal:
    """An unauthenticated callback: a reason to ask the vendor about the check it names."""

    vendor: str
    bt_id: str | None
    request_id: str | None


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
        keys.load(settings)  # the deployment's secret: a receiver without it does not start
        return cls(key or None, _load_public_key(pem) if pem else None, settings)

    def token_matches(self, service: str, d: Delivery) -> int:
        """The check id of a callback URL whose token is right, else :class:`Refused` (403)."""
        check_id, token = int(d.params["check_id"]), d.params["token"]
        expected = keys.callback_token(service, check_id, self.settings)
        if not (token.isascii() and hmac.compare_digest(expected, token)):
            raise Refused(403, "bad_token")
        return check_id


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


def _json_object(raw: bytes | str) -> dict[str, Any] | None:
    try:
        data = safejson.loads(raw)
    except safejson.UnsafeJSON:
        return None
    return data if isinstance(data, dict) else None


def _task_id(value: str | None) -> str | None:
    if value and len(value) > MAX_TASK_ID:
        raise Refused(400, "malformed")
    return value or None


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
    except SHAPE_ERRORS as exc:
        raise Refused(400, "malformed") from exc
    return Inbound(gme.VENDOR, _task_id(result.task_id), scrub(result.raw))


def tupu_view(d: Delivery, v: Verifiers) -> Inbound:
    if v.tupu_key is None:
        raise Refused(403, "not_configured")
    envelope = _json_object(d.raw)
    if envelope is None or not envelope.get("signature"):
        raise Refused(401, "unsigned")
    text, signature = envelope.get("json"), envelope["signature"]
    if not isinstance(text, str) or not isinstance(signature, str) or not signature.isascii():
        raise Refused(403, "bad_signature")  # what the signature check would say, without tripping on it
    if safejson.depth_exceeds(text.encode("utf-8")):  # safejson let no lone surrogate through
        raise Refused(400, "malformed")
    try:
        tupu.verify_signed(envelope, v.tupu_key)
    except tupu.SignatureError as exc:
        raise Refused(403, "bad_signature") from exc
    except (BadResponse, ValueError, binascii.Error) as exc:
        raise Refused(400, "malformed") from exc
    data = _json_object(text)
    if data is None:
        raise Refused(400, "malformed")
    try:
        event = tupu.parse_event(data)
    except SHAPE_ERRORS as exc:
        raise Refused(400, "malformed") from exc
    return Inbound(tupu.VENDOR, _task_id(event.task_id), scrub(data))


def shumei_signal_view(d: Delivery, v: Verifiers) -> Signal:
    """``/callbacks/shumei`` (no token): a ``btId`` or ``requestId`` to ask Shumei about."""
    body = _json_object(d.raw)
    if body is None:
        raise Refused(400, "malformed")
    bt_id, request_id = _id(body, "btId", shumei.BT_ID_MAX), _id(body, "requestId", MAX_TASK_ID)
    if bt_id is None and request_id is None:
        raise Refused(400, "no_bt_id")
    return Signal(shumei.VENDOR, bt_id, request_id)


def _id(body: dict[str, Any], name: str, limit: int) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise Refused(400, "malformed")
    return value


def shumei_view(d: Delivery, v: Verifiers) -> Inbound:
    """``/callbacks/shumei/{check_id}/{token}``: a result, or a failure (no ``btId``, seed 004)."""
    check_id = v.token_matches(shumei.VENDOR, d)
    body = _json_object(d.raw)
    if body is None:
        raise Refused(400, "malformed")
    try:
        shumei.parse_callback(body)
    except BadResponse as exc:
        raise Refused(400, "malformed") from exc
    except VendorError:
        pass  # a failure the vendor reports: stored, and the merge fails or retries the check
    except SHAPE_ERRORS as exc:
        raise Refused(400, "malformed") from exc
    bt_id = _id(body, "btId", shumei.BT_ID_MAX)
    return Inbound(shumei.VENDOR, bt_id, scrub(shumei.redact(body)), check_id, must_match=True)


def asr_view(d: Delivery, v: Verifiers) -> Inbound:
    check_id = v.token_matches(asr.VENDOR, d)
    body = _form_or_json(d)
    try:
        result = asr.parse_callback(body)
    except SHAPE_ERRORS as exc:
        raise Refused(400, "malformed") from exc
    return Inbound(asr.VENDOR, _task_id(result.request_id), scrub(body), check_id, must_match=True)


def _form_or_json(d: Delivery) -> dict[str, Any]:
    if "json" in d.content_type or d.raw.lstrip().startswith(b"{"):
        body = _json_object(d.raw)
        if body is None:
            raise Refused(400, "malformed")
        return body
    try:
        form = dict(parse_qsl(d.raw.decode("utf-8"), keep_blank_values=True,
                              max_num_fields=MAX_FORM_FIELDS))
        safejson.check_text(form)
    except (UnicodeDecodeError, ValueError) as exc:  # too many fields, NUL: ValueError too
        raise Refused(400, "malformed") from exc
    return form
