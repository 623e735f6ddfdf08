"""What the moderation vendors "find" in audio, and the task state they share.

Verdicts and transcripts are pure functions of the audio bytes (sha256), so tests
can predict every result: ``verdict_for(audio, "gme")``, ``text_for(audio)``. The
verdict does not depend on the vendor (about 60% PASS, 25% REVIEW, 15% REJECT);
the labels are the vendor's names for the same categories, in the order the
vendor's client reports them. Live streams are judged on their URL's bytes.

- GME: Success; REJECT → HitFlag true, labels from the hit piece; REVIEW → HitFlag
  false with one moderate-rate ScanDetail (``vendors.gme`` reads that as PASS).
- Shumei: riskLevel; labels are the ``riskLabel1`` of the non-PASS segments.
- Tupu: labels ``"<task>:<label>"`` as ``vendors.tupu.parse_event`` builds them (an integer
  for the vulgar task, a string for speech review).
- ASR judges nothing: :func:`text_for` only.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sandbox.callbacks import Callback, Courier, courier_of
from sandbox.core import VendorService
from sandbox.media import DownloadError, fetch

PASS, REVIEW, REJECT = "PASS", "REVIEW", "REJECT"
CATEGORIES = ("porn", "abuse", "ad", "illegal", "moan")
LABELS: dict[str, dict[str, str]] = {
    "gme": {c: c for c in CATEGORIES},
    "shumei": {"porn": "porn", "abuse": "abuse", "ad": "ad", "illegal": "politics", "moan": "moan"},
    "tupu": {
        "porn": "vulgar:1",
        "moan": "vulgar:2",
        "illegal": "speech_review:politics",  # speech review labels are strings
        "abuse": "speech_review:abuse",
        "ad": "speech_review:ads",
    },
}
WORDS = ("今天", "我们", "一起", "学习", "英语", "发音", "老师", "同学", "练习", "朗读",
         "课文", "声音", "清楚", "认真", "很好", "句子")  # fmt: skip


@dataclass(frozen=True)
class Finding:
    """The sandbox's ground truth for some bytes: a verdict, categories and their rates."""

    verdict: str
    categories: tuple[str, ...]  # empty for PASS; the primary one first
    rates: tuple[float, ...]  # 0..100, one per category, descending

    @property
    def hit(self) -> bool:
        return self.verdict == REJECT


def finding(audio: bytes) -> Finding:
    d = hashlib.sha256(audio).digest()
    bucket = int.from_bytes(d[:2], "big") % 100
    if bucket < 60:
        return Finding(PASS, (), ())
    primary = d[2] % len(CATEGORIES)
    if bucket < 85:
        return Finding(REVIEW, (CATEGORIES[primary],), (40 + d[5] % 30 + d[6] % 100 / 100,))
    categories = [CATEGORIES[primary]]
    if d[3] % 3 == 0:  # a third of the rejects hit a second category
        categories.append(CATEGORIES[(primary + 1 + d[4] % 4) % len(CATEGORIES)])
    rates = (85 + d[5] % 15 + d[6] % 100 / 100, 70 + d[7] % 10 + d[8] % 100 / 100)
    return Finding(REJECT, tuple(categories), rates[: len(categories)])


def verdict_for(audio: bytes, vendor: str) -> tuple[str, list[str]]:
    """``(verdict, labels)`` that ``vendor`` ("gme", "shumei", "tupu") gives ``audio``."""
    if vendor not in LABELS:
        raise ValueError(f"{vendor!r} gives no verdict (ASR: use text_for)")
    found = finding(audio)
    return found.verdict, [LABELS[vendor][c] for c in found.categories]


def text_for(audio: bytes) -> str:
    """The transcript every sandbox vendor gives ``audio`` (ASR text, Shumei audioText)."""
    d = hashlib.sha256(b"text:" + audio).digest()
    return "".join(WORDS[b % len(WORDS)] for b in d[: 4 + d[31] % 5]) + "。"


def audio_seconds(audio: bytes) -> float:
    """Duration: a WAV header's byte rate, otherwise 16 kHz 16-bit mono."""
    rate = 32000
    if audio[:4] == b"RIFF" and audio[8:12] == b"WAVE":
        rate = int.from_bytes(audio[28:32], "little") or rate
    return round(len(audio) / rate, 2)


# -- task state (moto's models.py, shared by the four vendors) -----------------------
@dataclass
class Task:
    task_id: str
    key: str  # the idempotency key: DataId, btId, forumId, callback_url
    info: dict[str, Any] = field(default_factory=dict)  # vendor inputs, JSON-safe
    created: float = field(default_factory=time.time)
    finished: float | None = None
    ready: bool = False
    verdict: str | None = None
    labels: list[str] = field(default_factory=list)
    text: str | None = None
    error: str | None = None  # the download failed
    found: Finding | None = None
    seconds: float = 0.0
    audio_sha256: str = ""
    audio: bytes = field(default=b"", repr=False)  # dropped once judged

    def finish(self, vendor: str | None, *, transcribe: bool = False) -> None:
        """Judge the audio (a stream's URL for Tupu and live GME), drop it, mark ready."""
        if self.error is None:
            if vendor is not None:
                self.found = finding(self.audio)
                self.verdict, self.labels = verdict_for(self.audio, vendor)
            self.text = text_for(self.audio) if transcribe else None
            self.seconds = audio_seconds(self.audio)
            self.audio_sha256 = hashlib.sha256(self.audio).hexdigest()
        self.audio = b""
        self.finished, self.ready = time.time(), True

    def snapshot(self) -> dict[str, Any]:
        return {
            "id": self.task_id, "key": self.key, "ready": self.ready, "verdict": self.verdict,
            "labels": self.labels, "text": self.text, "error": self.error,
            "audio_sha256": self.audio_sha256, **self.info,
        }  # fmt: skip


class Ledger:
    """Tasks by id, and the latest task per idempotency key."""

    def __init__(self) -> None:
        self.tasks: dict[str, Task] = {}
        self.by_key: dict[str, str] = {}

    def for_key(self, key: str) -> Task | None:
        return self.tasks.get(self.by_key.get(key, ""))

    def add(self, task: Task) -> bool:
        """Keep a new task; True when its key was seen before."""
        seen = task.key in self.by_key
        self.by_key[task.key] = task.task_id
        self.tasks[task.task_id] = task
        return seen


Finish = Callable[[Task], Awaitable[None]]


class ModerationService(VendorService):
    """A vendor with asynchronous results: a ledger, background jobs and callbacks."""

    def __init__(self, sandbox: Any) -> None:
        super().__init__(sandbox)
        self.ledger = Ledger()
        self._courier: Courier | None = None

    @property
    def courier(self) -> Courier:
        assert self._courier is not None, "add_routes was not called"
        return self._courier

    def add_routes(self, app: web.Application) -> None:
        self._courier = courier_of(app)
        self.add_vendor_routes(app)

    def add_vendor_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        if self._courier is not None:
            self._courier.cancel(self.name)
        self.ledger = Ledger()

    def snapshot(self) -> dict[str, Any]:
        return {"tasks": {tid: t.snapshot() for tid, t in self.ledger.tasks.items()}}

    def existing(self, key: str) -> Task | None:
        """The task already made for ``key`` (GME, Shumei), counted as a duplicate; or None."""
        task = self.ledger.for_key(key)
        if task is not None:
            self.stats.duplicate(self.name, key)
        return task

    def register(self, task: Task) -> Task:
        """Keep a new task, counted as accepted under its key (and as a duplicate when the
        key was seen before: Tupu and ASR make a new task each time)."""
        if self.ledger.add(task):
            self.stats.duplicate(self.name, task.key)
        self.stats.accept(self.name, task.key)
        return task

    async def deliver(self, callback: Callback) -> bool:
        return await self.courier.deliver(self.name, callback)

    def process(self, task: Task, source: bytes | str | None, finish: Finish) -> None:
        """In the background: get the audio (``source`` bytes, a URL to download, or None
        for a stream), let ``result_delay_s`` pass since submission, then ``finish(task)``."""
        delay = self.config.result_delay_s
        self.courier.spawn(self.name, self._process(task, source, finish, delay))

    async def _process(
        self, task: Task, source: bytes | str | None, finish: Finish, delay: float
    ) -> None:
        started = time.monotonic()
        if isinstance(source, str):
            try:
                task.audio = await fetch(self.courier.client(), source, self.config.fetch_timeout_s)
            except DownloadError as exc:
                task.error = f"download failed: {exc}"
        elif source is not None:
            task.audio = source
        await asyncio.sleep(max(0.0, delay - (time.monotonic() - started)))
        await finish(task)
