"""Fixtures for the webhook receiver: keys generated per test, a served receiver."""

from __future__ import annotations

import secrets

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from config.settings import get_settings, reset_settings
from tests.workers.webhook_helpers import Client, serve
from workers.webhooks import create_app


@pytest.fixture(scope="session")
def tupu_key() -> rsa.RSAPrivateKey:
    """Stands in for Tupu's key pair: Tupu signs callbacks with its private half."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def forger_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def keys(database_url, monkeypatch, tmp_path, tupu_key) -> dict[str, str]:
    """GME callback key, Tencent SecretKey and Tupu's public key PEM, set in the environment."""
    pem = tupu_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "tupu_public.pem").write_bytes(pem)
    values = {"gme": secrets.token_hex(16), "tencent": secrets.token_hex(16)}
    monkeypatch.setenv("VOXQUEUE_GME_CALLBACK_KEY", values["gme"])
    monkeypatch.setenv("VOXQUEUE_TENCENT_SECRET_KEY", values["tencent"])
    monkeypatch.setenv("VOXQUEUE_TUPU_PUBLIC_KEY", str(tmp_path / "tupu_public.pem"))
    reset_settings()
    return values


@pytest.fixture
def receiver(database_url, keys):
    """A receiver on a real socket whose ``enqueue`` records event ids and ``query`` check ids;
    its broker answers every health probe."""
    sent: list[int] = []
    queried: list[int] = []
    app = create_app(get_settings(), sent.append, query=queried.append, broker_probe=lambda: None)
    with serve(app) as url:
        yield Client(url, database_url, sent, queried)
