"""GME: checks gathered into ScanVoice calls of up to 100 tasks.

A call carries one ``Live`` and one ``Lang`` for all its tasks, so a gathering is
sent as one call per (files or streams, language). ``Lang`` unsent is Chinese to
the vendor: English jobs (the manifest's default) send ``"en"``.
"""

from __future__ import annotations

from typing import Any

from config.celery import GME_SUBMIT
from config.settings import get_settings
from tasks import clients, moderation
from tasks.app import app
from tasks.lifecycle import Lease
from tasks.media import callback_url, local_path, media_url
from vendors.errors import VendorError
from vendors.gme import GmeTask, check_media, lang_param

SCAN_LIMIT = 100


def describe(lease: Lease) -> dict[str, Any]:
    settings = get_settings()
    job = lease.job
    path = local_path(job)
    url = media_url(job, settings, "gme")
    live = check_media(url, path.stat().st_size if path else None, live=bool(job.stream))
    return {"url": url, "live": live, "room_id": job.options.get("room_id"),
            "open_id": job.options.get("user_id"), "lang": job.options.get("lang") or "en"}


@app.task(bind=True, name=GME_SUBMIT, acks_late=True, ignore_result=True, max_retries=None)
def submit(self, check_ids: list[int]) -> str:
    """Submit up to 100 GME checks in one ScanVoice call per kind and language."""
    batch = moderation.claim_all("gme", check_ids[:SCAN_LIMIT], describe)
    return moderation.submit_with_retries(self, batch, _scan)


def groups(checks: dict[int, dict[str, Any]]) -> dict[tuple[bool, str], list[tuple[int, dict[str, Any]]]]:
    """The checks by (live, language): one ScanVoice call each, files before streams."""
    found: dict[tuple[bool, str], list[tuple[int, dict[str, Any]]]] = {}
    for check_id, facts in sorted(checks.items(), key=lambda item: (item[1]["live"], item[1]["lang"])):
        found.setdefault((facts["live"], facts["lang"]), []).append((check_id, facts))
    return found


def _scan(batch: moderation.Claimed) -> dict[int, moderation.Accepted]:
    settings = get_settings()
    client = clients.gme(settings, clients.slot("gme"))  # a slot per ScanVoice call
    by_key = {facts["key"]: check_id for check_id, facts in batch.checks.items()}
    accepted: dict[int, moderation.Accepted] = {}
    for (live, lang), group in groups(batch.checks).items():
        tasks = [GmeTask(f["key"], f["url"], f.get("room_id"), f.get("open_id")) for _, f in group]
        try:
            submitted = client.scan_voice(tasks, live=live, callback=callback_url(settings, "gme"),
                                          lang=lang_param(lang))
        except VendorError:
            if not accepted:
                raise
            break  # the calls that went through are recorded; the other checks go again
        for item in submitted:
            if item.data_id in by_key:
                accepted[by_key[item.data_id]] = moderation.Accepted(item.task_id)
    return accepted
