"""Shumei audio v4: one file per request, its btId derived from the job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from config.settings import get_settings
from tasks import clients, moderation
from tasks.leases import Lease
from tasks.media import callback_url, local_path, media_url
from workers.app import app

RAW_FORMATS = {".wav": "wav", ".mp3": "mp3", ".pcm": "pcm", ".raw": "pcm"}


def describe(lease: Lease) -> dict[str, Any]:
    settings = get_settings()
    job = lease.job
    path = local_path(job)
    facts: dict[str, Any] = {"token_id": job.options.get("user_id") or job.key[:64],
                             "lang": job.options.get("lang")}
    if path is not None and path.suffix.lower() in RAW_FORMATS and \
            _base64_size(path) <= settings.shumei_raw_max_bytes:
        return facts | {"path": str(path), "fmt": RAW_FORMATS[path.suffix.lower()]}
    return facts | {"url": media_url(job, settings, "shumei")}


def _base64_size(path: Path) -> int:
    return 4 * -(-path.stat().st_size // 3)


@app.task(bind=True, name="voxqueue.shumei.submit", acks_late=True, ignore_result=True, max_retries=None)
def submit(self, check_ids: list[int] | int) -> None:
    """Submit a group of Shumei checks (or one), one request each."""
    ids = check_ids if isinstance(check_ids, list) else [check_ids]
    moderation.submit_each(self, moderation.claim_all("shumei", ids, describe), _submit)


def _submit(check_id: int, facts: dict[str, Any]) -> moderation.Accepted:
    settings = get_settings()
    client = clients.shumei(settings)
    raw = Path(facts["path"]).read_bytes() if "path" in facts else None
    pcm = facts.get("fmt") == "pcm"
    submitted = client.submit(
        facts["key"], url=facts.get("url"), raw=raw, fmt=facts.get("fmt"),
        rate=16000 if pcm else None, track=1 if pcm else None,
        callback=callback_url(settings, "shumei"), token_id=facts["token_id"],
        lang=None if facts.get("lang") != "zh" else "zh",
    )
    return moderation.Accepted(submitted.bt_id, {"requestId": submitted.request_id})
