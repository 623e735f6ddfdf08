"""Submitting jobs through the producers' API: ingest's validation and recording, made idempotent.

Rows are validated exactly as ``voxqueue ingest`` validates a manifest's
(:func:`tasks.manifest.validate`), except that a manifest from the network names no path on
this machine: its audio is an http(s) URL, or a file uploaded in the same request, stored
under ``VOXQUEUE_MEDIA_DIR`` (the row names it by its file name).

The same (batch, id) posted again with the same content returns the recorded job and sends
nothing; with different content the whole request is refused (:class:`Conflict`, the
differences field by field) and nothing is recorded. The content of a job is what
validation made of its row (an upload counts by its SHA-256, not by where it was stored),
and its rejection reason if it was rejected. A row without a usable id has no key to be
found again by, so it is answered as rejected and not recorded.

Everything is written in one transaction under the batch's row lock (two requests for the
same batch take turns); the checks are enqueued after it commits. A broker that does not
answer within ``VOXQUEUE_BROKER_WAIT_SECONDS`` does not undo anything: the jobs are
recorded, and housekeeping queues checks that were never sent (``deferred`` says how many).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config.settings import Settings, get_settings
from models import Batch, Check, Job, JobStatus
from models.db import session_scope
from tasks import outbox
from tasks.audio import MAX_FETCH_BYTES as SOE_MAX_BYTES  # SOE takes files of up to 64 MB
from tasks.dispatch import BrokerUnavailable, enqueue
from tasks.ingest import check_names, record
from tasks.manifest import Defaults, JobSpec, row_key, validate
from vendors.gme import MAX_FILE_BYTES as GME_MAX_BYTES

MAX_ROWS = 10_000
ASR_BODY_BYTES = 5 * 1024 * 1024  # ASR takes a local file in its request body up to this (tasks.asr)
UPLOAD_URL = "https://upload.invalid/"  # stands for an upload while a row's services are worked out
OPTION_FIELDS = ("ref_text", "lang", "eval_mode", "score_coeff", "soe_mode", "keywords", "user_id", "room_id")


class SubmitError(Exception):
    """A request that cannot be taken as a whole: ``status``, ``code`` and a message for the caller."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.details = status, code, details


class Conflict(SubmitError):
    def __init__(self, differences: list[dict[str, Any]]) -> None:
        ids = ", ".join(repr(d["id"]) for d in differences[:5])
        super().__init__(409, "conflict", f"{len(differences)} job(s) recorded with other content: {ids}",
                         conflicts=differences)


@dataclass(frozen=True)
class Upload:
    """A file uploaded with the request, already on disk under the media folder."""

    name: str  # as sent: what a row's audio names
    path: Path
    sha256: str
    size: int


@dataclass
class Submission:
    batch: str
    jobs: list[dict[str, Any]] = field(default_factory=list)  # {"id", "status", "created"}
    rejected: list[dict[str, Any]] = field(default_factory=list)  # {"row", "id", "reason"}
    queued: int = 0
    deferred: int = 0
    notify: outbox.Attached | None = None
    used_uploads: set[str] = field(default_factory=set)  # stored files that new jobs now use


def defaults_for(settings: Settings) -> Defaults:
    return Defaults(local_paths=False, callbacks=bool(settings.callback_base_url),
                    media_urls=bool(settings.media_base_url))


def upload_limit(services: list[str], settings: Settings) -> int:
    """The largest upload every one of ``services`` takes (and the request's own limit)."""
    by_url = bool(settings.media_base_url)  # moderation vendors fetch a large local file by URL
    limits = {"soe": SOE_MAX_BYTES, "gme": GME_MAX_BYTES,
              "shumei": None if by_url else settings.shumei_raw_max_bytes * 3 // 4,  # sent base64
              "asr": None if by_url else ASR_BODY_BYTES}
    known = [limits[s] for s in services if limits.get(s)]
    return min([settings.api_max_upload_bytes, *known])


def services_of(row: dict[str, Any], defaults: Defaults) -> list[str]:
    """The services a row asks for (as validation reads them), before its upload has arrived."""
    return validate(0, {**row, "audio": UPLOAD_URL}, Path("."), defaults).services


def specs_for(rows: list[tuple[int, dict[str, Any]]], uploads: dict[str, Upload],
              settings: Settings) -> list[JobSpec]:
    """Each row validated; a row whose audio names an upload is validated as that stored file."""
    defaults = defaults_for(settings)
    media = settings.media_path.resolve()
    specs = []
    for number, row in rows:
        upload = uploads.get(row.get("audio")) if isinstance(row.get("audio"), str) else None
        if upload is None:
            specs.append(validate(number, row, media, defaults))
            continue
        local = dataclasses.replace(defaults, local_paths=True)
        spec = validate(number, {**row, "audio": upload.path.relative_to(media).as_posix()}, media, local)
        spec.options["upload_sha256"] = upload.sha256
        if spec.error:  # the reason names the upload as sent, not where it is stored
            spec.error = spec.error.replace(str(upload.path), upload.name)
        specs.append(spec)
    return specs


def submit(batch: str, rows: list[tuple[int, dict[str, Any]]], *, token_id: int,
           uploads: dict[str, Upload] | None = None, notify_url: str | None = None) -> Submission:
    """Record the rows in ``batch`` (made for the token, or already its own) and enqueue them."""
    settings = get_settings()
    uploads = uploads or {}
    check_names(batch, Defaults())
    if not rows:
        raise SubmitError(400, "no_rows", "the body holds no job")
    if len(rows) > MAX_ROWS:
        raise SubmitError(413, "too_many_rows", f"{len(rows)} rows; at most {MAX_ROWS} in one request")
    specs = specs_for(rows, uploads, settings)
    try:
        result, pairs = _record(batch, specs, token_id, notify_url)
    except IntegrityError:  # another request made the batch, an endpoint or a job at the same moment
        result, pairs = _record(batch, specs_for(rows, uploads, settings), token_id, notify_url)
    _send(pairs, result)
    return result


def _record(batch: str, specs: list[JobSpec], token_id: int,
            notify_url: str | None) -> tuple[Submission, list[tuple[int, str]]]:
    result = Submission(batch)
    with session_scope() as session:
        row = _own_batch(session, batch, token_id)
        if notify_url is not None:
            result.notify = outbox.attach(session, row, outbox.owner_of_token(token_id), notify_url)
        fresh = _answer_known(session, row.id, specs, result)
        job_ids, pairs = record(session, row.id, fresh)
        for spec in fresh:
            result.jobs.append(_entry(spec.external_id, spec.error, created=True))
            if not spec.error and spec.audio:
                result.used_uploads.add(spec.audio)
        if job_ids and not pairs:  # only rejections: the batch may have nothing left open
            target = outbox.target_of(session, row)
            if target is not None:
                outbox.batch_settled(session, row, target)
    return result, pairs


def _own_batch(session: Session, name: str, token_id: int) -> Batch:
    """The batch, locked for this request: made for the token, or refused if another's."""
    found = session.scalar(select(Batch).where(Batch.name == name).with_for_update(key_share=True))
    if found is None:  # two requests making it at once: one fails, and is tried again (submit)
        found = Batch(name=name, source="api", api_token_id=token_id)
        session.add(found)
        session.flush()
    if found.api_token_id != token_id:
        raise SubmitError(409, "batch_taken", f"the batch name {name!r} is taken")
    return found


def _answer_known(session: Session, batch_id: int, specs: list[JobSpec], result: Submission) -> list[JobSpec]:
    """Rows already recorded are answered with their job (or raise :class:`Conflict`); rows
    without a usable id are answered as rejected; the rest come back to be recorded."""
    keyed, seen = [], set()
    for spec in specs:
        if spec.key in seen:  # as ingest does: the second row with an id is refused
            spec.key, spec.error = row_key(spec.row), f"duplicate id {spec.external_id!r} in this request"
        seen.add(spec.key)
        if spec.error:
            result.rejected.append({"row": spec.row, "id": spec.external_id, "reason": spec.error})
        if spec.key.startswith("#row "):
            continue
        keyed.append(spec)
    known = {job.key: job for job in session.scalars(
        select(Job).where(Job.batch_id == batch_id, Job.key.in_([s.key for s in keyed])))} if keyed else {}
    conflicts, fresh = [], []
    for spec in keyed:
        job = known.get(spec.key)
        if job is None:
            fresh.append(spec)
            continue
        differences = _differences(_content(job.audio, job.stream, job.services, job.options, job.error),
                                   _content(spec.audio, spec.stream, spec.services, spec.options, spec.error))
        if differences:
            conflicts.append({"id": spec.external_id, "differences": differences})
        else:
            result.jobs.append(_entry(spec.external_id, job.error, created=False, status=job.status))
    if conflicts:
        raise Conflict(conflicts)
    return fresh


def _content(audio, stream, services, options, error) -> dict[str, Any]:
    options = options or {}
    if options.get("upload_sha256"):
        audio = "upload sha256:" + options["upload_sha256"]
    content = {"audio": audio, "stream": stream, "services": list(services or [])}
    content |= {name: options.get(name) for name in OPTION_FIELDS}
    return content | {"rejected": error}


def _differences(recorded: dict[str, Any], posted: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: {"recorded": recorded[name], "posted": posted[name]}
            for name in recorded if recorded[name] != posted[name]}


def _entry(job_id: str | None, error: str | None, *, created: bool, status: str | None = None) -> dict[str, Any]:
    status = status or (JobStatus.REJECTED.value if error else JobStatus.PENDING.value)
    return {"id": job_id, "status": status, "created": created, "error": error}


def _send(pairs: list[tuple[int, str]], result: Submission) -> None:
    if not pairs:
        return
    try:
        enqueue(pairs)
        result.queued = len(pairs)
    except BrokerUnavailable:
        result.deferred = len(pairs)  # recorded: housekeeping sends them when the broker is back


def owned_batch(session: Session, name: str, token_id: int) -> Batch | None:
    """The token's batch of that name, or None (none, or another's: the same answer)."""
    return session.scalar(select(Batch).where(Batch.name == name, Batch.api_token_id == token_id))


def failed_checks(session: Session, batch_id: int, service: str | None) -> int:
    from sqlalchemy import func

    query = (select(func.count()).select_from(Check).join(Job)
             .where(Job.batch_id == batch_id, Check.status == "failed"))
    if service:
        query = query.where(Check.service == service)
    return session.scalar(query) or 0
