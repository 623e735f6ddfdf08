"""Reading a submission's body: one job or an array as JSON, JSON Lines, or multipart with uploads.

JSON is parsed by :mod:`vendors.safejson` (bounded nesting, finite numbers, storable text)
from a body capped at ``VOXQUEUE_API_MAX_BODY_BYTES`` that must arrive within
``Limits.body_s`` (:func:`workers.webhooks.read_capped`: 413 and 408). In JSON Lines a line
that is not a JSON object is that row's rejection, as in a manifest.

``multipart/form-data`` carries a ``jobs`` part (JSON or JSON Lines), optionally a
``notify_url`` part, and files: a row whose ``audio`` is a file's name (as sent) is that file.
Files are streamed to disk under the media folder, hashed as they come, never held in
memory; each is capped by the smallest limit of the services its rows ask for (SOE 64 MB, ...:
:func:`tasks.submit.upload_limit`), known while it streams when the ``jobs`` part comes first,
and the whole body by ``VOXQUEUE_API_MAX_UPLOAD_BYTES``: 413 as soon as one is over. A part
that sends nothing for ``Limits.idle_s`` gets 408. On any refusal the files of the request
are deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from config.settings import Settings
from tasks.fields import kind, problem, shown
from tasks.manifest import AUDIO_SUFFIXES
from tasks.submit import Upload, defaults_for, services_of, upload_limit
from vendors import safejson
from workers.webhook_views import Refused
from workers.webhooks import read_capped

JSON_TYPES = ("application/json",)
JSONL_TYPES = ("application/x-ndjson", "application/jsonl", "application/x-jsonlines", "application/jsonlines")
MULTIPART = "multipart/form-data"
CHUNK = 256 * 1024
MAX_NAME = 255
MAX_FIELD = 4096  # a notify_url part


class BodyError(Exception):
    """A body that cannot be read: status, code, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Limits:
    """How long the API waits for a body, in seconds (tests shorten them)."""

    body_s: float = 30.0  # a JSON or JSON Lines body, whole
    idle_s: float = 10.0  # a multipart body sending nothing
    upload_s: float = 900.0  # a multipart body, whole
    call_s: float = 30.0  # each database call of a request (a submission: plus the broker's wait)
    shutdown_s: float = 2.0


@dataclass
class Body:
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    uploads: dict[str, Upload] = field(default_factory=dict)
    notify_url: str | None = None

    def discard(self, keep: set[str] = frozenset()) -> None:
        """Delete the stored uploads (but those whose path is in ``keep``)."""
        for upload in self.uploads.values():
            if str(upload.path) not in keep:
                with contextlib.suppress(OSError):
                    os.unlink(upload.path)


async def read_body(request: web.Request, settings: Settings, limits: Limits,
                    blocking: Callable[..., Any]) -> Body:
    """The rows (and uploads) of a submission, or :class:`BodyError`."""
    ctype = request.content_type
    if ctype in JSON_TYPES or ctype in JSONL_TYPES:
        raw = await _capped(request, settings.api_max_body_bytes, limits.body_s)
        return Body(json_rows(raw) if ctype in JSON_TYPES else jsonl_rows(raw))
    if ctype == MULTIPART:
        body = Body()
        try:
            await _multipart(request, settings, limits, blocking, body)
        except BaseException:
            body.discard()
            raise
        return body
    raise BodyError(415, "unsupported_media_type", f"jobs are posted as application/json, application/x-ndjson "
                                                   f"or {MULTIPART}, not {shown(ctype, 80) or 'no content type'}")


async def _capped(request: web.Request, limit: int, timeout: float) -> bytes:
    try:
        return await read_capped(request, limit, timeout)
    except Refused as refused:
        if refused.status == 413:
            raise BodyError(413, "too_large", f"the body is over {limit:,} bytes") from None
        raise BodyError(408, "slow_body", f"the body did not arrive within {timeout:g}s") from None


def json_rows(raw: bytes) -> list[tuple[int, dict[str, Any]]]:
    """One job (an object) or an array of them."""
    try:
        value = safejson.loads(raw)
    except safejson.UnsafeJSON as exc:
        raise BodyError(400, "invalid_json", f"the body is not usable JSON: {exc}") from None
    if isinstance(value, dict):
        return [(1, value)]
    if isinstance(value, list):
        return [(n, _row(item)) for n, item in enumerate(value, start=1)]
    raise BodyError(400, "invalid_json", f"the body must be a job (an object) or an array of jobs, not {kind(value)}")


def jsonl_rows(raw: bytes) -> list[tuple[int, dict[str, Any]]]:
    """A job per line; lines end at ``\\n``, blank lines are no rows."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BodyError(400, "invalid_text", f"the body is not UTF-8 text (byte {exc.start})") from None
    rows = []
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            try:
                rows.append((number, _row(safejson.loads(line))))
            except safejson.UnsafeJSON as exc:
                rows.append((number, {"__error__": f"not valid JSON ({exc})"}))
    return rows


def _row(item: Any) -> dict[str, Any]:
    return item if isinstance(item, dict) else {"__error__": f"not a JSON object ({kind(item)})"}


def _jobs_part(raw: bytes) -> list[tuple[int, dict[str, Any]]]:
    """The ``jobs`` part: JSON (an object or an array), else JSON Lines."""
    try:
        safejson.loads(raw)
    except safejson.UnsafeJSON:
        return jsonl_rows(raw)
    return json_rows(raw)


async def _multipart(request: web.Request, settings: Settings, limits: Limits, blocking, body: Body) -> None:
    if request.content_length is not None and request.content_length > settings.api_max_upload_bytes:
        raise BodyError(413, "too_large", f"the body is over {settings.api_max_upload_bytes:,} bytes")
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError) as exc:  # a boundary missing or malformed
        raise BodyError(400, "invalid_multipart", f"the multipart body cannot be read ({shown(str(exc), 80)})") from None
    folder = settings.media_path.resolve() / "uploads"
    await blocking(lambda: folder.mkdir(parents=True, exist_ok=True))
    state = _Multipart(settings, limits, blocking, folder, body)
    try:
        async with asyncio.timeout(limits.upload_s):
            while (part := await _within(reader.next(), limits.idle_s)) is not None:
                await state.take(part)
    except TimeoutError:
        raise BodyError(408, "slow_body", "the body did not arrive in time") from None
    except (ValueError, HttpProcessingError) as exc:  # aiohttp's parser: a bad part header or boundary
        raise BodyError(400, "invalid_multipart", f"the multipart body cannot be read ({shown(str(exc), 80)})") from None
    state.finish()


async def _within(awaitable, seconds: float):
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        raise BodyError(408, "slow_body", f"the body sent nothing for {seconds:g}s") from None


class _Multipart:
    def __init__(self, settings: Settings, limits: Limits, blocking, folder: Path, body: Body) -> None:
        self.settings, self.limits, self.blocking, self.folder, self.body = settings, limits, blocking, folder, body
        self.defaults = defaults_for(settings)
        self.jobs_seen = False
        self.caps: dict[str, int] = {}  # file name -> its rows' smallest limit
        self.size = 0

    async def take(self, part) -> None:
        if not isinstance(part, BodyPartReader):
            raise BodyError(400, "invalid_multipart", "a nested multipart part is not taken")
        if part.filename is not None:
            await self._file(part)
        elif part.name == "jobs" and not self.jobs_seen:
            self.jobs_seen = True
            self.body.rows = _jobs_part(await self._text(part, self.settings.api_max_body_bytes))
            self._caps()
        elif part.name == "notify_url" and self.body.notify_url is None:
            self.body.notify_url = _text_field(await self._text(part, MAX_FIELD), "notify_url")
        else:
            name = shown(part.name or "", 60) or "(no name)"
            raise BodyError(400, "invalid_multipart", f"unexpected part {name}: parts are jobs, notify_url and files")

    async def _text(self, part: BodyPartReader, limit: int) -> bytes:
        chunks, size = [], 0
        while chunk := await _within(part.read_chunk(CHUNK), self.limits.idle_s):
            size += len(chunk)
            self._count(len(chunk))
            if size > limit:
                raise BodyError(413, "too_large", f"the {shown(part.name or '', 40)} part is over {limit:,} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _count(self, n: int) -> None:
        self.size += n
        if self.size > self.settings.api_max_upload_bytes:
            raise BodyError(413, "too_large", f"the body is over {self.settings.api_max_upload_bytes:,} bytes")

    def _caps(self) -> None:
        for _, row in self.body.rows:
            audio = row.get("audio")
            if isinstance(audio, str) and not problem("", audio):
                limit = upload_limit(services_of(row, self.defaults), self.settings)
                self.caps[audio] = min(limit, self.caps.get(audio, limit))

    async def _file(self, part: BodyPartReader) -> None:
        name = part.filename or ""
        if not name or len(name) > MAX_NAME or problem("", name):
            raise BodyError(400, "invalid_upload", f"an upload's file name must be 1 to {MAX_NAME} characters of text")
        if name in self.body.uploads:
            raise BodyError(400, "invalid_upload", f"two uploads are named {shown(name, 80)}")
        suffix = Path(name).suffix.lower()
        path = self.folder / f"{uuid.uuid4().hex}{suffix if suffix in AUDIO_SUFFIXES else ''}"
        cap = self.caps.get(name, self.settings.api_max_upload_bytes)
        digest, size = hashlib.sha256(), 0
        handle = await self.blocking(open, path, "xb")
        self.body.uploads[name] = Upload(name, path, "", 0)  # deleted with the others on a refusal
        try:
            while chunk := await _within(part.read_chunk(CHUNK), self.limits.idle_s):
                size += len(chunk)
                self._count(len(chunk))
                if size > cap:
                    raise BodyError(413, "too_large", f"upload {shown(name, 80)} is over {cap:,} bytes, the limit of "
                                                      "the services its rows ask for")
                digest.update(chunk)
                await self.blocking(handle.write, chunk)
        finally:
            await self.blocking(handle.close)
        self.body.uploads[name] = Upload(name, path, digest.hexdigest(), size)

    def finish(self) -> None:
        """Every upload named by a row, and within its rows' limit (a file sent before the rows)."""
        if not self.jobs_seen:
            raise BodyError(400, "invalid_multipart", "the multipart body has no jobs part")
        named = {row.get("audio") for _, row in self.body.rows}
        unused = [name for name in self.body.uploads if name not in named]
        if unused:
            raise BodyError(400, "unused_upload", f"no row names the upload {shown(unused[0], 80)}")
        for name, upload in self.body.uploads.items():
            cap = self.caps.get(name, self.settings.api_max_upload_bytes)
            if upload.size > cap:
                raise BodyError(413, "too_large", f"upload {shown(name, 80)} is over {cap:,} bytes, the limit of "
                                                  "the services its rows ask for")


def _text_field(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise BodyError(400, "invalid_text", f"the {name} part is not UTF-8 text") from None
