"""Keys of ours that vendors see, derived from the deployment's secret.

One key per purpose, each ``HMAC-SHA256(secret, "voxqueue/" + purpose)``, so a key
that leaks for one purpose tells nothing about another (and none of them is a vendor
credential). Every derived value is an HMAC of stable inputs (batch, row key and
service; service and check id), so it is the same on every retry and redelivery:
the idempotency keys still mean "nothing is sent twice".

The secret is ``VOXQUEUE_SECRET_KEY`` when set, else the row ``voxqueue db upgrade``
stored (:mod:`models.deployment`); it is read once per process (per settings object)
and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading

from config.settings import Settings
from models.deployment import stored_secret

IDEMPOTENCY = "idempotency-key"  # GME DataId, Shumei btId, Tupu forumId
CALLBACK_TOKEN = "callback-token"  # the token in ASR's and Shumei's callback URLs
NOTIFY_SECRET = "notify-secret"  # the key that signs a notification URL's events (tasks.notify)
PURPOSES = (IDEMPOTENCY, CALLBACK_TOKEN, NOTIFY_SECRET)
NOTIFY_SECRET_PREFIX = "vqwh_"
KEY_PREFIX = "vq-"
KEY_HEX_CHARS = 32  # 128 bits: "vq-" + 32 = 35 characters, within every vendor's limit
TOKEN_HEX_CHARS = 32


class MissingSecret(RuntimeError):
    """No usable deployment secret: the message says what to do (and never shows a value)."""


_lock = threading.Lock()
_cache: tuple[Settings, dict[str, bytes]] | None = None  # the settings object they belong to


def secret_of(settings: Settings) -> bytes:
    if settings.secret_key is not None:  # validated: 16 characters or more
        return settings.secret_key.get_secret_value().encode()
    stored = stored_secret(settings.database_url)
    if not stored:
        raise MissingSecret("the database has no deployment secret: run `voxqueue db upgrade` "
                            "(or set VOXQUEUE_SECRET_KEY)")
    return stored.encode()


def purpose_key(purpose: str, settings: Settings) -> bytes:
    """The key for one purpose, derived once per settings object."""
    global _cache
    if purpose not in PURPOSES:
        raise ValueError(f"unknown key purpose {purpose!r}")
    cached = _cache
    if cached is None or cached[0] is not settings:
        with _lock:
            cached = _cache
            if cached is None or cached[0] is not settings:
                secret = secret_of(settings)
                keys = {p: hmac.new(secret, f"voxqueue/{p}".encode(), hashlib.sha256).digest() for p in PURPOSES}
                cached = _cache = (settings, keys)
    return cached[1][purpose]


def _hex(purpose: str, message: str, settings: Settings, chars: int) -> str:
    data = message.encode("utf-8", "surrogatepass")  # any row key gets a key, even one that is not text
    return hmac.new(purpose_key(purpose, settings), data, hashlib.sha256).hexdigest()[:chars]


def vendor_key(batch: str, row_key: str, service: str, settings: Settings) -> str:
    """The idempotency key of a job's check at a vendor (``DataId``, ``btId``, ``forumId``)."""
    message = json.dumps([batch, row_key, service])  # unambiguous whatever the names hold
    return KEY_PREFIX + _hex(IDEMPOTENCY, message, settings, KEY_HEX_CHARS)


def callback_token(service: str, check_id: int, settings: Settings) -> str:
    """The token in a check's callback URL: only we (and the vendor we gave the URL to) know it."""
    return _hex(CALLBACK_TOKEN, f"{service}:{check_id}", settings, TOKEN_HEX_CHARS)


def notify_secret(endpoint_id: int, owner: str, url: str, settings: Settings) -> str:
    """The signing secret of a notification endpoint (shown to its owner once, when it is made)."""
    message = json.dumps([endpoint_id, owner, url])
    return NOTIFY_SECRET_PREFIX + _hex(NOTIFY_SECRET, message, settings, 64)


def load(settings: Settings) -> None:
    """Read the secret now (a process that serves callbacks fails at start, not per request)."""
    purpose_key(CALLBACK_TOKEN, settings)
