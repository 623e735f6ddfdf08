"""Settings come from VOXQUEUE_* variables and .env; secrets stay hidden."""

from __future__ import annotations

from config.settings import Settings


def test_defaults_are_the_contracts():
    s = Settings()
    assert s.database_url == "sqlite:///var/voxqueue.db"
    assert s.soe_endpoint == "https://soe.tencentcloudapi.com"
    assert s.soe_chunk_bytes == 10240 and s.tencent_region == "ap-guangzhou"
    assert s.shumei_type == "POLITICS_PORN_AD_MOAN" and s.asr_engine == "16k_0"


def test_environment_and_dotenv(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text("VOXQUEUE_SOE_CHUNK_BYTES=4097\nVOXQUEUE_TENCENT_SECRET_KEY=from-dotenv\n")
    monkeypatch.setenv("VOXQUEUE_SOE_ENDPOINT", "http://127.0.0.1:8700")
    s = Settings()
    assert s.soe_endpoint == "http://127.0.0.1:8700"
    assert s.soe_chunk_bytes == 4096  # kept even: a chunk never splits a 16-bit sample
    assert s.secret_values() == ["from-dotenv"]
    assert "from-dotenv" not in repr(s) and "from-dotenv" not in str(s.model_dump())
