"""Settings from ``VOXQUEUE_*`` environment variables or a ``.env`` file (see CONTRACT.md)."""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES = ("soe", "gme", "shumei", "tupu", "asr")
EMBEDDED_BROKER = "embedded"
MIN_SECRET_CHARS = 16
ENV_PREFIX = "VOXQUEUE_"
ENV_FILE = ".env"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(Exception):
    """Settings that cannot be used: which variable, and what is wrong with it, never its value
    (a value may be a secret, and pydantic's own message quotes it)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=ENV_FILE, env_file_encoding="utf-8", extra="ignore"
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
    # SOE's limits per evaluation mode ("Facts added later" in vendor-notes.md): audio longer, or
    # reference text with more words, is rejected at ingest. The word limits are uncertain.
    soe_max_seconds_word: float = 60.0
    soe_max_seconds_sentence: float = 60.0
    soe_max_seconds_paragraph: float = 300.0
    soe_max_seconds_free: float = 300.0
    soe_max_words_sentence: int = 30
    soe_max_words_paragraph: int = 120
    # How long SOE keeps a finished session's result for IsQuery; an async session is polled until then.
    soe_result_window_seconds: float = 600.0

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
    # A closed stream whose end callback has not come after this long ends with the verdict it has.
    tupu_close_grace_seconds: float = 300.0

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
    lease_seconds: int = 300  # the last backstop: a claim whose lease lapsed goes again (a stuck worker)
    stale_seconds: int = 15  # a check waiting this long for a message no live worker holds, its queue empty
    housekeeping_interval: float = 5.0  # seconds between housekeeping rounds (workers and beat)
    broker_wait_seconds: float = 15.0  # how long a producer retries an unreachable broker before it gives up
    poll_interval: float = 2.0  # seconds between polling rounds on the beat
    log_json: bool = False
    log_level: str = "INFO"

    @field_validator("*", mode="before")
    @classmethod
    def _utf8(cls, value: Any) -> Any:
        """A byte that is not UTF-8 in the environment arrives as a lone surrogate, which would
        fail far from here (signing a request, connecting to the database)."""
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("is not UTF-8 text") from None
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None  # empty, as in a copied .env.example: the database's
        if len(value.get_secret_value()) < MIN_SECRET_CHARS:
            raise ValueError(f"must be at least {MIN_SECRET_CHARS} characters")
        return value

    @field_validator("soe_chunk_bytes")
    @classmethod
    def _even_chunks(cls, value: int) -> int:
        if value < 2:
            raise ValueError("must be at least 2")
        return value - (value % 2)  # a chunk never splits a 16-bit sample

    @field_validator("soe_qps", "gme_qps", "shumei_qps", "tupu_qps", "asr_qps", "vendor_timeout",
                     "breaker_cooldown", "housekeeping_interval", "poll_interval")
    @classmethod
    def _positive_number(cls, value: float) -> float:
        if not math.isfinite(value) or value <= 0:  # nan would pass every comparison below
            raise ValueError("must be a positive number")
        return value

    @field_validator("soe_max_seconds_word", "soe_max_seconds_sentence", "soe_max_seconds_paragraph",
                     "soe_max_seconds_free", "soe_result_window_seconds")
    @classmethod
    def _positive_seconds(cls, value: float) -> float:
        if not math.isfinite(value) or value <= 0:
            raise ValueError("must be a positive number of seconds")
        return value

    @field_validator("broker_wait_seconds", "tupu_close_grace_seconds")
    @classmethod
    def _duration(cls, value: float) -> float:
        if not math.isfinite(value) or value < 0:
            raise ValueError("must be a number of seconds, 0 or more")
        return value

    @field_validator("soe_max_attempts", "shumei_raw_max_bytes", "db_pool_size", "breaker_threshold",
                     "max_deliveries", "lease_seconds", "stale_seconds", "soe_max_words_sentence",
                     "soe_max_words_paragraph")
    @classmethod
    def _positive_integer(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be a positive integer")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return value

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
    """The settings, or :class:`SettingsError` saying what is wrong with them."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(describe(exc)) from None
    except UnicodeDecodeError:  # the only text read from a file is the .env
        raise SettingsError(_not_utf8(Path(ENV_FILE))) from None
    except OSError as exc:
        raise SettingsError(f"{Path(ENV_FILE).absolute()}: cannot be read ({exc.strerror})") from None


# pydantic's error types, in words that fit after the variable's name.
_PROBLEMS = {
    "int_parsing": "must be an integer", "int_from_float": "must be an integer", "int_type": "must be an integer",
    "float_parsing": "must be a number", "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "bool_parsing": "must be true or false", "bool_type": "must be true or false",
    "string_type": "must be text", "path_type": "must be a path", "missing": "must be set",
}


def describe(error: ValidationError) -> str:
    """Every problem on one line, as ``VOXQUEUE_NAME: what is wrong``; no value, no URL."""
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        name = (ENV_PREFIX + str(item["loc"][0]).upper()) if item["loc"] else "settings"
        problems.append(f"{name}: {_problem(item)}")
    return "; ".join(problems)


def _problem(item: Any) -> str:
    if item["type"] == "value_error":  # our validators' own words
        return str(item["ctx"]["error"])
    return _PROBLEMS.get(item["type"]) or item["msg"].replace("Input should be", "must be")


def _not_utf8(path: Path) -> str:
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return f"{path.absolute()}: line {line} is not UTF-8 text"
    return f"{path.absolute()}: is not UTF-8 text"


def reset_settings() -> None:
    """Forget the cached settings (tests change the environment)."""
    get_settings.cache_clear()
