"""Settings from ``VOXQUEUE_*`` environment variables or a ``.env`` file (see CONTRACT.md)."""

from __future__ import annotations

import functools
from pathlib import Path

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES = ("soe", "gme", "shumei", "tupu", "asr")
EMBEDDED_BROKER = "embedded"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="VOXQUEUE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = "sqlite:///var/voxqueue.db"
    broker_url: str = EMBEDDED_BROKER
    var_dir: Path = Path("var")
    callback_base_url: str | None = None
    # Every key of ours a vendor sees (DataId, btId, forumId, callback tokens) is an HMAC under
    # this secret; unset, the one `voxqueue db upgrade` generated and stored in the database.
    secret_key: SecretStr | None = None
    media_base_url: str | None = None

    tencent_secret_id: str = ""
    tencent_secret_key: SecretStr = SecretStr("")
    tencent_token: SecretStr | None = None
    tencent_region: str = "ap-guangzhou"

    soe_endpoint: str = "https://soe.tencentcloudapi.com"
    soe_chunk_bytes: int = 10240
    soe_app_id: str | None = None
    soe_max_attempts: int = 8

    gme_endpoint: str = "https://gme.tencentcloudapi.com"
    gme_biz_id: int | None = None
    gme_callback_key: SecretStr | None = None

    asr_endpoint: str = "https://aai.qcloud.com"
    asr_appid: str | None = None
    asr_engine: str = "16k_0"

    shumei_endpoint: str = "http://api-audio-sh.fengkongcloud.com"
    shumei_access_key: SecretStr | None = None
    shumei_app_id: str = "default"
    shumei_event_id: str = "default"
    shumei_type: str = "POLITICS_PORN_AD_MOAN"
    shumei_raw_max_bytes: int = 6 * 1024 * 1024

    tupu_endpoint: str = "http://api.speech.tuputech.com"
    tupu_secret_id: str | None = None
    tupu_private_key: Path | None = None
    tupu_public_key: Path | None = None

    # Shared per-vendor request limits (requests per second across every worker).
    soe_qps: float = 50.0
    gme_qps: float = 100.0
    shumei_qps: float = 50.0
    tupu_qps: float = 20.0
    asr_qps: float = 20.0

    vendor_timeout: float = 10.0
    db_pool_size: int = 20  # PostgreSQL connections a process keeps (threads that work at once)
    breaker_threshold: int = 10  # retryable failures in 30 s that open a vendor's circuit
    breaker_cooldown: float = 10.0  # seconds a vendor's work steps aside once its circuit opens
    max_deliveries: int = 5  # a message that kills its worker this often fails its check
    lease_seconds: int = 300  # running work whose lease lapsed is re-enqueued by housekeeping
    stale_seconds: int = 600  # a pending check untouched this long, its queue empty, is re-enqueued
    housekeeping_interval: float = 30.0  # seconds between housekeeping rounds on the beat
    poll_interval: float = 2.0  # seconds between polling rounds on the beat
    log_json: bool = False
    log_level: str = "INFO"

    @field_validator("soe_chunk_bytes")
    @classmethod
    def _even_chunks(cls, value: int) -> int:
        if value < 2:
            raise ValueError("VOXQUEUE_SOE_CHUNK_BYTES must be at least 2")
        return value - (value % 2)  # a chunk never splits a 16-bit sample

    def qps(self, service: str) -> float:
        return float(getattr(self, f"{service}_qps"))

    def secret_values(self) -> list[str]:
        """Every configured secret, for redaction and for the tests that scan for leaks."""
        values = [
            self.tencent_secret_key, self.tencent_token, self.gme_callback_key, self.shumei_access_key,
            self.secret_key,
        ]
        return [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings (tests change the environment)."""
    get_settings.cache_clear()
