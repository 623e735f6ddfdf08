"""GME: checks gathered into ScanVoice calls of up to 100 tasks."""

from __future__ import annotations

from typing import Any

from config.settings import get_settings
from tasks import clients, moderation
from tasks.leases import Lease
from tasks.media import callback_url, local_path, media_url
from vendors.gme import GmeTask, check_media
from workers.app import app

SCAN_LIMIT = 100


def describe(lease: Lease) -> dict[str, Any]:
    settings = get_settings()
    job = lease.job
    path = local_path(job)
    url = media_url(job, settings, "gme")
    live = check_media(url, path.stat().st_size if path else None, live=bool(job.stream))
    return {"url": url, "live": live, "room_id": job.options.get("room_id"),
            "open_id": job.options.get("user_id")}


@app.task(bind=True, name="voxqueue.gme.submit", acks_late=True, ignore_result=True, max_retries=None)
def submit(self, check_ids: list[int]) -> None:
    """Submit up to 100 GME checks in one ScanVoice call (files and streams apart)."""
    batch = moderation.claim_all("gme", check_ids[:SCAN_LIMIT], describe)
    moderation.submit_with_retries(self, batch, _scan)


def _scan(batch: moderation.Claimed) -> dict[int, moderation.Accepted]:
    settings = get_settings()
    client = clients.gme(settings)
    by_key = {facts["key"]: check_id for check_id, facts in batch.checks.items()}
    accepted: dict[int, moderation.Accepted] = {}
    for live in (False, True):
        group = [(cid, f) for cid, f in batch.checks.items() if f["live"] is live]
        if not group:
            continue
        tasks = [GmeTask(f["key"], f["url"], f.get("room_id"), f.get("open_id")) for _, f in group]
        for item in client.scan_voice(tasks, live=live, callback=callback_url(settings, "gme")):
            if item.data_id in by_key:
                accepted[by_key[item.data_id]] = moderation.Accepted(item.task_id)
    return accepted
