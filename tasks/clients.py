"""Vendor clients built from settings (credentials never leave these objects)."""

from __future__ import annotations

import functools
from collections.abc import Callable

from config.settings import Settings
from tasks.ratelimit import take
from vendors.asr import AsrClient
from vendors.errors import InvalidInput
from vendors.gme import GmeClient
from vendors.shumei import ShumeiClient
from vendors.tc3 import Credentials
from vendors.tupu import TupuClient, TupuSigner


def tencent_credentials(settings: Settings) -> Credentials:
    token = settings.tencent_token.get_secret_value() if settings.tencent_token else None
    return Credentials(settings.tencent_secret_id, settings.tencent_secret_key.get_secret_value(), token)


def _require(vendor: str, value, variable: str):
    if value in (None, ""):
        raise InvalidInput(vendor, "not_configured", f"{variable} is not set")
    return value


Hook = Callable[[], None] | None


def slot(vendor: str, max_wait: float = 1.0) -> Callable[[], None]:
    """A client's ``before_send``: a slot of the vendor's shared rate limit, taken as each request
    leaves (:func:`tasks.ratelimit.take`; ``Throttled`` when it is more than ``max_wait`` away)."""
    return functools.partial(take, vendor, max_wait)


def gme(settings: Settings, before_send: Hook = None) -> GmeClient:
    biz_id = _require("gme", settings.gme_biz_id, "VOXQUEUE_GME_BIZ_ID")
    return GmeClient(settings.gme_endpoint, tencent_credentials(settings), biz_id=biz_id,
                     region=settings.tencent_region, timeout=settings.vendor_timeout,
                     before_send=before_send)


def shumei(settings: Settings, endpoint: str | None = None,
           before_send: Hook = None) -> ShumeiClient:
    """A client of one Shumei cluster: ``endpoint``, or the default one."""
    key = _require("shumei", settings.shumei_access_key, "VOXQUEUE_SHUMEI_ACCESS_KEY")
    return ShumeiClient(
        endpoint or settings.shumei_endpoint, key.get_secret_value(), app_id=settings.shumei_app_id,
        event_id=settings.shumei_event_id, types=settings.shumei_type,
        raw_max_bytes=settings.shumei_raw_max_bytes, timeout=min(settings.vendor_timeout, 5.0),
        before_send=before_send,
    )


def asr(settings: Settings, before_send: Hook = None) -> AsrClient:
    appid = _require("asr", settings.asr_appid, "VOXQUEUE_ASR_APPID")
    return AsrClient(settings.asr_endpoint, appid, tencent_credentials(settings),
                     engine=settings.asr_engine, timeout=settings.vendor_timeout,
                     before_send=before_send)


def tupu(settings: Settings, before_send: Hook = None) -> TupuClient:
    secret_id = _require("tupu", settings.tupu_secret_id, "VOXQUEUE_TUPU_SECRET_ID")
    key_path = _require("tupu", settings.tupu_private_key, "VOXQUEUE_TUPU_PRIVATE_KEY")
    public = settings.tupu_public_key.read_bytes() if settings.tupu_public_key else None
    signer = TupuSigner(secret_id, key_path.read_bytes())
    return TupuClient(settings.tupu_endpoint, signer, public_key_pem=public,
                      timeout=settings.vendor_timeout, before_send=before_send)
