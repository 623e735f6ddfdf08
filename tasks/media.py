"""Where a vendor fetches a job's audio from.

Vendors that only take URLs get http(s) audio as it is, and a local file as
``VOXQUEUE_MEDIA_BASE_URL`` + its path relative to the manifest's folder (the
folder that base URL serves). With no base URL such a check cannot be sent,
and says so.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from config.settings import Settings
from tasks.audio import is_url
from tasks.lifecycle import JobFacts
from vendors.errors import InvalidInput


def local_path(job: JobFacts) -> Path | None:
    return None if job.audio is None or is_url(job.audio) else Path(job.audio)


def media_url(job: JobFacts, settings: Settings, vendor: str) -> str:
    if job.stream:
        return job.stream
    if is_url(job.audio):
        return job.audio
    if not settings.media_base_url:
        raise InvalidInput(vendor, "media_url_required",
                           f"{vendor} only takes URLs: set VOXQUEUE_MEDIA_BASE_URL to serve local files")
    relative = job.options.get("audio_rel") or Path(job.audio).name
    return settings.media_base_url.rstrip("/") + "/" + quote(relative)


def callback_url(settings: Settings, vendor: str, suffix: str = "") -> str | None:
    if not settings.callback_base_url:
        return None
    return f"{settings.callback_base_url.rstrip('/')}/callbacks/{vendor}{suffix}"
