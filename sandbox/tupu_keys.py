"""Tupu's keys in the sandbox: requests checked with the customer's public key, answers and
callbacks signed with the server key (generated on first use when none is configured), and
a forger's key for the ``callback_signing="forged"`` switch."""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import json
import time
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sandbox.callbacks import tamper
from sandbox.core import SandboxConfig
from vendors.tupu import load_public_key

# The sandbox's own error codes (the seed lists none).
INVALID_PARAMS, UNKNOWN_SECRET_ID, BAD_SIGNATURE, STALE, UNKNOWN_TASK = 1001, 1002, 1003, 1004, 1005


class TupuError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _rsa_sign(key: rsa.RSAPrivateKey, text: str) -> str:
    signature = key.sign(text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def _generate() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.lru_cache(maxsize=8)
def _load_private(pem: str) -> rsa.RSAPrivateKey:  # loading checks the key: slow, so cached
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the Tupu server key must be an RSA private key")
    return key


class KeyRing:
    """The customer's public key (checks requests), the server key (signs), a forger's key."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        pem, server = config.tupu_client_public_key, config.tupu_server_private_key
        self.client = load_public_key(pem.encode()) if pem else None
        self._server = _load_private(server) if server else None
        self._forger: rsa.RSAPrivateKey | None = None
        self._lock = asyncio.Lock()

    async def server_key(self) -> rsa.RSAPrivateKey:
        async with self._lock:  # generated once, off the loop
            if self._server is None:
                self._server = await asyncio.to_thread(_generate)
            return self._server

    async def _forger_key(self) -> rsa.RSAPrivateKey:
        async with self._lock:
            if self._forger is None:
                self._forger = await asyncio.to_thread(_generate)
            return self._forger

    async def envelope(self, data: dict[str, Any], mode: str) -> dict[str, str]:
        """``{"json", "signature"}``; ``mode`` "forged" or "corrupt" spoils it (callbacks)."""
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        key = await (self._forger_key() if mode == "forged" else self.server_key())
        signature = _rsa_sign(key, text)
        if mode == "corrupt":
            text = tamper(text.encode()).decode()
        return {"json": text, "signature": signature}

    def verify_request(self, secret_id: str, literal: dict[str, Any]) -> None:
        """``literal``: the body parsed with numbers kept as the text that was sent."""
        ts, nonce, signature = (literal.get(k) for k in ("timestamp", "nonce", "signature"))
        if not all(isinstance(v, str) and v for v in (ts, nonce, signature)):
            raise TupuError(BAD_SIGNATURE, "timestamp, nonce and signature are required")
        if self.client is None:
            raise TupuError(BAD_SIGNATURE, "the sandbox has no Tupu client public key")
        try:
            when = float(ts)
        except ValueError:
            raise TupuError(STALE, "timestamp is not a number") from None
        when = when / 1000 if when > 1e11 else when  # milliseconds
        if abs(time.time() - when) > self.config.clock_skew_s:
            raise TupuError(STALE, "timestamp is outside the allowed clock skew")
        message = f"{secret_id},{ts},{nonce}".encode()
        try:
            raw = base64.b64decode(signature, validate=True)
            self.client.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
        except (binascii.Error, ValueError, InvalidSignature):
            raise TupuError(BAD_SIGNATURE, "signature does not verify") from None
