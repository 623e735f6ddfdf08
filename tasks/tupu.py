"""Tupu live-stream moderation: a stream task per check, results by callback."""

from __future__ import annotations

from typing import Any

from config.celery import TUPU_SUBMIT
from config.settings import get_settings
from tasks import clients, moderation
from tasks.app import app
from tasks.lifecycle import Lease
from tasks.media import callback_url
from vendors.errors import InvalidInput

CALLBACK_VIOLATIONS_AND_END = 3


def describe(lease: Lease) -> dict[str, Any]:
    settings = get_settings()
    if not settings.callback_base_url:
        raise InvalidInput("tupu", "callback_required",
                           "tupu delivers results only by callback: set VOXQUEUE_CALLBACK_BASE_URL")
    job = lease.job
    if not job.stream:
        raise InvalidInput("tupu", "stream_required", "tupu moderates live streams: give a stream URL")
    return {"url": job.stream, "room_id": job.options.get("room_id"), "user_id": job.options.get("user_id")}


@app.task(bind=True, name=TUPU_SUBMIT, acks_late=True, ignore_result=True, max_retries=None)
def submit(self, check_ids: list[int]) -> str:
    """Open a Tupu stream task per check (one to a message, as dispatch sends them)."""
    return moderation.submit_each(self, moderation.claim_all("tupu", check_ids, describe), _submit)


def _submit(check_id: int, facts: dict[str, Any]) -> moderation.Accepted:
    settings = get_settings()
    submitted = clients.tupu(settings, clients.slot("tupu")).submit_stream(
        facts["key"], facts["url"], callback_url=callback_url(settings, "tupu"),
        callback_rules=CALLBACK_VIOLATIONS_AND_END, room_id=facts.get("room_id"),
        user_id=facts.get("user_id"),
    )
    return moderation.Accepted(submitted.task_id, polled=False)
