"""Tencent offline ASR: the text of a file, delivered only by callback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from config.celery import ASR_SUBMIT
from config.settings import get_settings
from tasks import clients, keys, moderation
from tasks.app import app
from tasks.lifecycle import Lease
from tasks.media import callback_url, local_path, media_url
from vendors.errors import InvalidInput

BODY_LIMIT = 5 * 1024 * 1024


def describe(lease: Lease) -> dict[str, Any]:
    settings = get_settings()
    if not settings.callback_base_url:
        raise InvalidInput("asr", "callback_required",
                           "asr delivers results only by callback: set VOXQUEUE_CALLBACK_BASE_URL")
    job = lease.job
    path = local_path(job)
    if path is not None and path.stat().st_size <= BODY_LIMIT:
        return {"path": str(path)}
    return {"url": media_url(job, settings, "asr")}


@app.task(bind=True, name=ASR_SUBMIT, acks_late=True, ignore_result=True, max_retries=None)
def submit(self, check_ids: list[int]) -> str:
    """Submit a group of ASR checks, one request each."""
    return moderation.submit_each(self, moderation.claim_all("asr", check_ids, describe), _submit)


def _submit(check_id: int, facts: dict[str, Any]) -> moderation.Accepted:
    settings = get_settings()
    token = keys.callback_token("asr", check_id, settings)
    audio = Path(facts["path"]).read_bytes() if "path" in facts else None
    submitted = clients.asr(settings, clients.slot("asr")).submit(
        callback_url=callback_url(settings, "asr", f"/{check_id}/{token}"), audio=audio, url=facts.get("url"),
    )
    return moderation.Accepted(submitted.request_id, polled=False)
