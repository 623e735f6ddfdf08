"""Settings from ``VOXQUEUE_*`` environment variables or a ``.env`` file (see CONTRACT.md)."""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES = ("soe", "gme", "shumei", "tupu", "asr")
EMBEDDED_BROKER = "embedded"
MIN_SECRET_CHARS = 16
ENV_PREFIX = "VOXQUEUE_"
ENV_FILE = ".env"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


MAX_NOTIFY_URL = 2000


def notify_url_problem(value: str) -> str | None:
    """Why ``value`` cannot be a notification URL (an http(s) URL with a host), or None."""
    if len(value) > MAX_NOTIFY_URL:
        return f"a notification URL is at most {MAX_NOTIFY_URL} characters"
    if any(c.isspace() or not c.isprintable() for c in value):
        return "a notification URL has no spaces or control characters"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number from 0 to 65535)
    except ValueError:
        return "a notification URL must be a well-formed http(s) URL"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return "a notification URL must be an http(s) URL with a host"
    return None


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

    shumei_endpoint: str = "http://api-audio-sh.fengkongcloud.com"  # Chinese audio, and the default
    # The cluster Shumei gave the account for English audio (sh and bj serve Chinese only);
    # unset, English goes to shumei_endpoint too, with data.lang "en".
    shumei_endpoint_en: str | None = None
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

    # Shared per-vendor request limits (requests per second across every worker), from the vendors'
    # published limits (/work/shared/seeds, vendor-notes.md); where a vendor publishes none, a
    # conservative default, said to be one: raise it to the quota your account was given.
    soe_qps: float = 50.0  # conservative: SOE's docs (seed 000) publish no request rate
    gme_qps: float = 5000.0  # GME ScanVoice: "默认接口请求频率限制:5000次/秒" (seed 003)
    gme_result_qps: float = 1200.0  # GME DescribeScanResultList: 1200 requests/s (vendor notes)
    shumei_qps: float = 50.0  # conservative: seed 004 names code 1901 (QPS exceeded), no number
    tupu_qps: float = 20.0  # conservative: seed 001 publishes no request rate
    asr_qps: float = 20.0  # Tencent offline ASR task creation: 20 requests/s (vendor notes)

    vendor_timeout: float = 10.0
    db_pool_size: int = 20  # PostgreSQL connections a process keeps (threads that work at once)
    # Seconds to open a PostgreSQL connection (a server that never answers), and that one
    # statement may run (a lock held for ever; 0: no limit).
    db_connect_timeout: float = 10.0
    db_statement_timeout: float = 60.0
    breaker_threshold: int = 10  # retryable failures in 30 s that open a vendor's circuit
    breaker_cooldown: float = 10.0  # seconds a vendor's work steps aside once its circuit opens
    max_deliveries: int = 5  # a message that kills its worker this often fails its check
    lease_seconds: int = 300  # the last backstop: a claim whose lease lapsed goes again (a stuck worker)
    stale_seconds: int = 15  # a check waiting this long for a message no live worker holds, its queue empty
    housekeeping_interval: float = 5.0  # seconds between housekeeping rounds (workers and beat)
    broker_wait_seconds: float = 15.0  # how long a producer retries an unreachable broker before it gives up
    poll_interval: float = 2.0  # seconds between polling rounds on the beat (and notification rounds)

    # The producers' API (workers.api): uploads are stored under media_dir (default var_dir/media).
    media_dir: Path | None = None
    api_max_body_bytes: int = 16 * 1024 * 1024  # a JSON or JSON Lines body, or a multipart one's rows
    api_max_upload_bytes: int = 100 * 1024 * 1024  # a whole multipart body (each file: its services' limit)
    # Notifications (tasks.notify): where a batch that names no URL of its own is notified, the key
    # that signs those events, how long a failing delivery is retried, its longest pause, its timeout.
    notify_url: str | None = None
    notify_secret: SecretStr | None = None
    notify_retry_seconds: float = 24 * 3600.0
    notify_backoff_max_seconds: float = 3600.0
    notify_timeout: float = 10.0
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

    @field_validator("secret_key", "notify_secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None  # empty, as in a copied .env.example: the database's
        if len(value.get_secret_value()) < MIN_SECRET_CHARS:
            raise ValueError(f"must be at least {MIN_SECRET_CHARS} characters")
        return value

    @field_validator("notify_url")
    @classmethod
    def _notify_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if notify_url_problem(value):
            raise ValueError(f"must be an http(s) URL of at most {MAX_NOTIFY_URL} characters")
        return value

    @model_validator(mode="after")
    def _notify_signed(self) -> Settings:
        if self.notify_url and self.notify_secret is None:
            raise ValueError("VOXQUEUE_NOTIFY_SECRET must be set with VOXQUEUE_NOTIFY_URL (it signs the events)")
        return self

    @property
    def media_path(self) -> Path:
        """Where uploads are stored."""
        return self.media_dir if self.media_dir is not None else self.var_dir / "media"

    @field_validator("soe_chunk_bytes")
    @classmethod
    def _even_chunks(cls, value: int) -> int:
        if value < 2:
            raise ValueError("must be at least 2")
        return value - (value % 2)  # a chunk never splits a 16-bit sample

    @field_validator("soe_qps", "gme_qps", "gme_result_qps", "shumei_qps", "tupu_qps", "asr_qps",
                     "vendor_timeout", "db_connect_timeout",
                     "breaker_cooldown", "housekeeping_interval", "poll_interval", "notify_timeout",
                     "notify_backoff_max_seconds")
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

    @field_validator("broker_wait_seconds", "tupu_close_grace_seconds", "notify_retry_seconds",
                     "db_statement_timeout")
    @classmethod
    def _duration(cls, value: float) -> float:
        if not math.isfinite(value) or value < 0:
            raise ValueError("must be a number of seconds, 0 or more")
        return value

    @field_validator("soe_max_attempts", "shumei_raw_max_bytes", "db_pool_size", "breaker_threshold",
                     "max_deliveries", "lease_seconds", "stale_seconds", "api_max_body_bytes",
                     "api_max_upload_bytes", "soe_max_words_sentence", "soe_max_words_paragraph")
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

    def shumei_endpoint_for(self, lang: str | None) -> str:
        """The Shumei cluster for audio in ``lang`` (a job's ``lang``: "en" or "zh")."""
        if lang == "en" and self.shumei_endpoint_en:
            return self.shumei_endpoint_en
        return self.shumei_endpoint

    def qps(self, service: str) -> float:
        return float(getattr(self, f"{service}_qps"))

    def secret_values(self) -> list[str]:
        """Every configured secret, for redaction and for the tests that scan for leaks."""
        values = [
            self.tencent_secret_key, self.tencent_token, self.gme_callback_key, self.shumei_access_key,
            self.secret_key, self.notify_secret,
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
