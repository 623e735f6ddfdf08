"""Audio the vendors download: a static route for local files, and the download itself.

``voxqueue sandbox --media DIR`` (config ``media_dir``, env
``VOXQUEUE_SANDBOX_MEDIA_DIR``) serves DIR at ``/media/...``; point the pipeline's
``VOXQUEUE_MEDIA_BASE_URL`` at ``{sandbox}/media``. The route is not a vendor route:
no latency, no faults, not counted. Vendors that get a URL call :func:`fetch` when
they process the task; any failure is a :class:`DownloadError`, which each vendor
turns into its own download-failure outcome.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from sandbox.core import SandboxConfig

MEDIA_PREFIX = "/media"
MAX_MEDIA_BYTES = 100 * 1024 * 1024  # GME's file limit, the largest of the vendors
CONCURRENT_DOWNLOADS = 4  # a burst of 100 downloads at once would stall the loop (its lag)

_limits: dict[int, asyncio.Semaphore] = {}  # per event loop (tests run several)


def _download_slots() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    return _limits.setdefault(id(loop), asyncio.Semaphore(CONCURRENT_DOWNLOADS))


class DownloadError(Exception):
    """The vendor could not get the audio: bad scheme, HTTP error, timeout, too large."""


def add_media_route(app: web.Application, config: SandboxConfig) -> None:
    if config.media_dir:
        app.router.add_static(MEDIA_PREFIX, config.media_dir, show_index=False)


async def fetch(
    session: aiohttp.ClientSession, url: str, timeout_s: float, limit: int = MAX_MEDIA_BYTES
) -> bytes:
    """GET ``url`` and return its body (at most ``limit`` bytes, not empty)."""
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise DownloadError(f"cannot download {urlsplit(url).scheme or 'a relative'} URL")
    async with _download_slots():
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
                if response.status != 200:
                    raise DownloadError(f"HTTP {response.status}")
                return await _read(response, limit)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise DownloadError(type(exc).__name__) from exc


async def _read(response: aiohttp.ClientResponse, limit: int) -> bytes:
    parts, size = [], 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise DownloadError(f"larger than {limit} bytes")
        parts.append(chunk)
    if not size:
        raise DownloadError("empty file")
    return b"".join(parts)
