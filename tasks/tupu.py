"""Tupu live-stream moderation: a stream task per check, results by callback."""

from __future__ import annotations

from typing import Any

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


@app.task(bind=True, name="voxqueue.tupu.submit", acks_late=True, ignore_result=True, max_retries=None)
def submit(self, check_id: int) -> None:
    batch = moderation.claim_all("tupu", [check_id], describe)
    moderation.submit_with_retries(self, batch, _submit)


def _submit(batch: moderation.Claimed) -> dict[int, moderation.Accepted]:
    settings = get_settings()
    ((check_id, facts),) = batch.checks.items()
    submitted = clients.tupu(settings).submit_stream(
        facts["key"], facts["url"], callback_url=callback_url(settings, "tupu"),
        callback_rules=CALLBACK_VIOLATIONS_AND_END, room_id=facts.get("room_id"),
        user_id=facts.get("user_id"),
    )
    return {check_id: moderation.Accepted(submitted.task_id, polled=False)}
