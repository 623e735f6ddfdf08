"""Settings come from VOXQUEUE_* variables and .env; secrets stay hidden."""

from __future__ import annotations

import secrets

import pytest

from config.settings import Settings, SettingsError, get_settings


def test_defaults_are_the_contracts():
    s = Settings()
    assert s.database_url == "sqlite:///var/voxqueue.db"
    assert s.soe_endpoint == "https://soe.tencentcloudapi.com"
    assert s.soe_chunk_bytes == 10240 and s.tencent_region == "ap-guangzhou"
    assert s.shumei_type == "POLITICS_PORN_AD_MOAN" and s.asr_engine == "16k_0"


def test_default_limits_are_the_vendors_published_ones():
    s = Settings()
    # published: GME ScanVoice, GME DescribeScanResultList, ASR task creation
    assert (s.qps("gme"), s.qps("gme_result"), s.qps("asr")) == (5000, 1200, 20)
    assert (s.qps("soe"), s.qps("shumei"), s.qps("tupu")) == (50, 50, 20)  # none: conservative


def test_environment_and_dotenv(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text("VOXQUEUE_SOE_CHUNK_BYTES=4097\nVOXQUEUE_TENCENT_SECRET_KEY=from-dotenv\n")
    monkeypatch.setenv("VOXQUEUE_SOE_ENDPOINT", "http://127.0.0.1:8700")
    s = Settings()
    assert s.soe_endpoint == "http://127.0.0.1:8700"
    assert s.soe_chunk_bytes == 4096  # kept even: a chunk never splits a 16-bit sample
    assert s.secret_values() == ["from-dotenv"]
    assert "from-dotenv" not in repr(s) and "from-dotenv" not in str(s.model_dump())


def test_a_bad_value_is_named_and_never_quoted(monkeypatch):
    value = "k" + secrets.token_hex(8)
    monkeypatch.setenv("VOXQUEUE_GME_BIZ_ID", value)
    monkeypatch.setenv("VOXQUEUE_SOE_CHUNK_BYTES", "1")
    with pytest.raises(SettingsError) as caught:
        get_settings()
    assert str(caught.value) == ("VOXQUEUE_SOE_CHUNK_BYTES: must be at least 2; "
                                 "VOXQUEUE_GME_BIZ_ID: must be an integer")
    assert caught.value.__suppress_context__  # pydantic's error, which quotes the value, is not shown


def test_a_dotenv_that_is_not_utf8_is_named(tmp_path):
    (tmp_path / ".env").write_bytes(b"# saved as Latin-1\nVOXQUEUE_TENCENT_SECRET_KEY=caf\xe9\n")
    with pytest.raises(SettingsError, match=r"^/.*/\.env: line 2 is not UTF-8 text$"):
        get_settings()


def test_good_values_still_load(monkeypatch):
    monkeypatch.setenv("VOXQUEUE_SOE_QPS", "0.5")
    monkeypatch.setenv("VOXQUEUE_LOG_LEVEL", "debug")
    s = get_settings()
    assert s.qps("soe") == 0.5 and s.log_level == "debug"
