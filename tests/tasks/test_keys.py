"""Vendor keys and callback tokens: HMACs under the deployment's secret, stable, unguessable."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import uuid

import pytest
from click.testing import CliRunner
from sqlalchemy import delete

from config.settings import SettingsError, get_settings, reset_settings
from models import DeploymentSecret
from models.db import engine_for
from models.deployment import ensure_secret, stored_secret
from models.migrate import upgrade
from tasks import keys
from vendors.shumei import BT_ID_MAX
from workers.cli import cli

OLD_NAMESPACE = uuid.UUID("3f1d8f0e-6c35-4a8e-9d55-6f1f0a6e2b10")  # what the source said before


def test_db_upgrade_stores_one_secret_and_keeps_it(database_url):
    first = stored_secret(database_url)
    assert first and len(first) >= 40
    upgrade(database_url)
    assert ensure_secret(database_url) is False
    assert stored_secret(database_url) == first


def test_db_upgrade_makes_a_missing_secret_and_never_prints_it(database_url, caplog):
    with engine_for(database_url).begin() as conn:
        conn.execute(delete(DeploymentSecret))
    with caplog.at_level(logging.DEBUG):
        result = CliRunner().invoke(cli, ["db", "upgrade"])
    secret = stored_secret(database_url)
    assert result.exit_code == 0 and secret
    assert secret not in result.output and secret not in caplog.text


def test_the_setting_wins_and_then_nothing_is_stored(tmp_path, monkeypatch):
    monkeypatch.setenv("VOXQUEUE_SECRET_KEY", "s" * 24)
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    monkeypatch.setenv("VOXQUEUE_DATABASE_URL", url)
    reset_settings()
    upgrade(url)
    assert stored_secret(url) is None
    expected_key = hmac.new(b"s" * 24, b"voxqueue/idempotency-key", hashlib.sha256).digest()
    expected = "vq-" + hmac.new(expected_key, b'["b", "row", "gme"]', hashlib.sha256).hexdigest()[:32]
    assert keys.vendor_key("b", "row", "gme", get_settings()) == expected


def test_keys_are_stable_across_processes_and_differ_per_input(database_url):
    one = keys.vendor_key("batch", "row-1", "shumei", get_settings())
    reset_settings()  # another process: the secret read again from the database
    assert keys.vendor_key("batch", "row-1", "shumei", get_settings()) == one
    others = {keys.vendor_key(*args, get_settings()) for args in [
        ("batch", "row-1", "gme"), ("batch", "row-2", "shumei"), ("batch2", "row-1", "shumei"),
        ("batch\x00row-1", "", "shumei"), ("batch", "row-1\x00shumei", "")]}
    assert one not in others and len(others) == 5
    assert re.fullmatch(r"vq-[0-9a-f]{32}", one) and len(one) <= BT_ID_MAX


def test_keys_cannot_be_computed_from_the_source(database_url):
    """Neither the old uuid5 formula nor an HMAC under an empty or vendor key gives them."""
    settings = get_settings()
    key = keys.vendor_key("batch", "row-1", "shumei", settings)
    assert key != "vq-" + uuid.uuid5(OLD_NAMESPACE, "batch\x00row-1\x00shumei").hex
    token = keys.callback_token("shumei", 7, settings)
    guesses = [hmac.new(k, b"shumei:7", hashlib.sha256).hexdigest()[:32]
               for k in (b"", settings.tencent_secret_key.get_secret_value().encode(), b"voxqueue")]
    assert token not in guesses


def test_another_deployment_has_other_keys(database_url, tmp_path, monkeypatch):
    ours = keys.vendor_key("batch", "row-1", "gme", get_settings())
    theirs_url = f"sqlite:///{tmp_path / 'theirs.db'}"
    upgrade(theirs_url)
    monkeypatch.setenv("VOXQUEUE_DATABASE_URL", theirs_url)
    reset_settings()
    assert keys.vendor_key("batch", "row-1", "gme", get_settings()) != ours


def test_one_key_per_purpose(database_url):
    settings = get_settings()
    assert keys.purpose_key(keys.IDEMPOTENCY, settings) != keys.purpose_key(keys.CALLBACK_TOKEN, settings)
    assert keys.callback_token("asr", 7, settings) != keys.callback_token("shumei", 7, settings)
    with pytest.raises(ValueError):
        keys.purpose_key("anything", settings)


def test_a_missing_or_short_secret_says_what_to_do(database_url, monkeypatch):
    with engine_for(database_url).begin() as conn:
        conn.execute(delete(DeploymentSecret))
    reset_settings()
    with pytest.raises(keys.MissingSecret, match="run `voxqueue db upgrade`"):
        keys.vendor_key("b", "r", "gme", get_settings())
    monkeypatch.setenv("VOXQUEUE_SECRET_KEY", "tooshort")
    reset_settings()
    with pytest.raises(SettingsError) as caught:
        get_settings()
    assert str(caught.value) == "VOXQUEUE_SECRET_KEY: must be at least 16 characters"


def test_an_empty_setting_is_unset(database_url, monkeypatch):
    stored = keys.vendor_key("b", "r", "gme", get_settings())
    monkeypatch.setenv("VOXQUEUE_SECRET_KEY", "")  # as in a copied .env.example
    reset_settings()
    assert get_settings().secret_key is None
    assert keys.vendor_key("b", "r", "gme", get_settings()) == stored
    monkeypatch.setenv("VOXQUEUE_SECRET_KEY", "x" * 16)
    reset_settings()
    assert "x" * 16 in get_settings().secret_values()  # redacted wherever secrets are


def test_a_row_key_that_is_not_text_still_gets_a_stable_key(database_url):
    weird = "row-\ud800"  # a lone surrogate (rejected at ingest elsewhere; never a crash here)
    settings = get_settings()
    assert keys.vendor_key("b", weird, "gme", settings) == keys.vendor_key("b", weird, "gme", settings)
