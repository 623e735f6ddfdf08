"""Reading audio for transmission: local files and http(s) URLs, in chunks.

A chunk never splits a 16-bit sample (chunk sizes are even) and the reader
looks one chunk ahead so the caller knows which chunk is the last without
holding the whole file in memory.

:func:`prepare` gives SOE what it takes. A 16 kHz mono 16-bit WAV, or raw PCM, goes as
it is (VoiceFileType 2 or 1), read straight from the file or the URL; anything else
is decoded (:mod:`tasks.decoder`) into a temporary file of raw PCM, sent as
VoiceFileType 1. Raw PCM rather than a WAV made for the purpose: no header to write
before the length is known, nothing for the vendor to parse, and the bytes the
vendor scores are exactly the decoded samples. Either way the size is known before
the first chunk leaves, so the chunk size can be chosen for the whole file
(:func:`chunk_bytes_for`).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tasks import decoder, probe
from vendors import http
from vendors.errors import InvalidInput, TransportError
from vendors.soe import MAX_SEQ_ID, voice_file_type_for

URL_SCHEMES = ("http://", "https://")
HEAD = 4096
PCM, WAV = 1, 2  # VoiceFileType
MAX_FETCH_BYTES = 64 * 1024 * 1024  # SOE's file limit in its newer docs: a URL is read to at most this


@dataclass(frozen=True)
class Chunk:
    seq: int  # 1-based, as SOE's SeqId
    data: bytes
    is_end: bool


def is_url(ref: str) -> bool:
    return ref.startswith(URL_SCHEMES)


def chunk_count(size: int, chunk_bytes: int) -> int:
    return max(1, -(-size // chunk_bytes))


def chunk_bytes_for(size: int, configured: int, max_chunks: int = MAX_SEQ_ID) -> int:
    """The configured chunk size, or for a file that would need more than ``max_chunks``
    chunks of it (SOE's SeqId stops at 3000), the smallest even size that needs no more."""
    needed = -(-size // max_chunks)
    return max(configured, needed + needed % 2)


@dataclass
class Prepared:
    """Audio ready to go to SOE: its stream (at the start), size and ``VoiceFileType``."""

    stream: BinaryIO
    size: int
    voice_file_type: int  # 1 raw PCM, 2 WAV
    seconds: float
    converted: bool  # decoded from another format


@contextlib.contextmanager
def prepare(ref: str, *, max_seconds: float | None = None, timeout: float = 30.0) -> Iterator[Prepared]:
    """The audio at ``ref`` as SOE takes it (see the module's docstring).

    Raises :class:`InvalidInput` for audio no decoder reads, and :class:`decoder.TooLong`
    when decoding passes ``max_seconds`` (the decoding stops there).
    """
    with open_audio(ref, timeout=timeout) as raw:
        head = _read_full(raw, HEAD)
        if not head:
            raise InvalidInput("audio", "empty_audio", "audio file is empty")
        native, size = native_type(ref, head), _known_size(raw, ref)
        if native and size is not None:
            yield Prepared(_rewound(raw, head), size, native, _seconds(native, head, size), converted=False)
            return
        with contextlib.ExitStack() as temporary:
            source: str | BinaryIO = ref
            if is_url(ref):  # spooled: a decoder seeks, and the length must be known
                source = temporary.enter_context(tempfile.TemporaryFile())
                size = _spool(head, raw, source)
            if native:
                yield Prepared(source, size, native, _seconds(native, head, size), converted=False)
                return
            out = temporary.enter_context(tempfile.TemporaryFile())
            size = _decode(source, out, max_seconds)
            yield Prepared(out, size, PCM, size / decoder.BYTES_PER_SECOND, converted=True)


def native_type(ref: str, head: bytes) -> int | None:
    """``VoiceFileType`` of audio SOE takes as it is: raw PCM (by its name, no container in it)
    or a 16 kHz mono 16-bit PCM WAV (by its header); None when it must be decoded."""
    found = probe.sniff(head)
    if found is None and voice_file_type_for(ref) == PCM:
        return PCM
    if found != "wav":
        return None
    header = probe.wav_header(io.BytesIO(head))
    return WAV if header is not None and header.soe_native else None


def _known_size(raw: BinaryIO, ref: str) -> int | None:
    if not is_url(ref):
        return os.fstat(raw.fileno()).st_size
    headers = getattr(raw, "headers", {}) or {}
    length = headers.get("Content-Length")
    if headers.get("Content-Encoding") or not (length and length.isdigit()):
        return None  # urllib3 hands out the decoded body: its length is not the header's
    return int(length)


class _Prefixed(io.RawIOBase):
    """The bytes already read, then the rest of the stream."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self.head, self.rest = head, rest

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.head:
            part, self.head = (self.head, b"") if size < 0 else (self.head[:size], self.head[size:])
            return part
        return self.rest.read(size)


def _rewound(raw: BinaryIO, head: bytes) -> BinaryIO:
    if raw.seekable():
        raw.seek(0)
        return raw
    return _Prefixed(head, raw)


def _spool(head: bytes, raw: BinaryIO, into: BinaryIO) -> int:
    into.write(head)
    shutil.copyfileobj(_Capped(raw, MAX_FETCH_BYTES - len(head)), into, 64 * 1024)
    size = into.tell()
    into.seek(0)
    return size


class _Capped(io.RawIOBase):
    def __init__(self, raw: BinaryIO, limit: int) -> None:
        self.raw, self.left = raw, limit

    def read(self, size: int = -1) -> bytes:
        block = self.raw.read(size)
        self.left -= len(block)
        if self.left < 0:
            raise InvalidInput("audio", "audio_too_large", f"audio URL holds over {MAX_FETCH_BYTES // 2**20} MiB")
        return block


def _decode(source: str | BinaryIO, out: BinaryIO, max_seconds: float | None) -> int:
    limit = None if max_seconds is None else int(max_seconds * decoder.BYTES_PER_SECOND)
    try:
        size = decoder.decode(source, out, max_bytes=limit)
    except decoder.Unreadable as exc:
        raise InvalidInput("audio", "undecodable_audio", f"audio cannot be decoded ({exc})") from None
    out.seek(0)
    return size


def _seconds(native: int, head: bytes, size: int) -> float:
    header = probe.wav_header(io.BytesIO(head)) if native == WAV else None
    samples = size - (header.data_start if header else 0)
    return max(0, samples) / decoder.BYTES_PER_SECOND


@contextlib.contextmanager
def open_audio(ref: str, *, timeout: float = 30.0) -> Iterator[BinaryIO]:
    """A readable binary stream for a local path or an http(s) URL."""
    if not is_url(ref):
        path = Path(ref)
        if not path.is_file():
            raise InvalidInput("audio", "file_missing", f"audio file not found: {ref}")
        with path.open("rb") as fh:
            yield fh
        return
    try:
        response = http.stream(ref, timeout=timeout)
    except Exception as exc:  # urllib3's own hierarchy: connection, timeout, invalid URL, redirects
        raise TransportError("audio", f"could not fetch {ref}: {type(exc).__name__}") from exc
    try:
        status = response.status
        if status in (404, 410):
            raise InvalidInput("audio", "url_not_found", f"audio URL answered {status}: {ref}")
        if 400 <= status < 500 and status not in (408, 429):  # it will not change by asking again
            raise InvalidInput("audio", "url_refused", f"audio URL answered {status}: {ref}")
        if status >= 400:
            raise TransportError("audio", f"audio URL answered HTTP {status}: {ref}")
        yield response
    except BaseException:
        response.close()  # a half-read body must not go back to the pool
        raise
    finally:
        response.drain_conn()  # read to the end (normally nothing is left) and pool the connection


def iter_chunks(stream: BinaryIO, chunk_bytes: int, *, start_seq: int = 1) -> Iterator[Chunk]:
    """Chunks of ``chunk_bytes`` (even) from ``stream``, starting at ``start_seq``.

    Chunks before ``start_seq`` are read and skipped, so a resumed transmission
    sends exactly the chunks the vendor has not acknowledged.
    """
    if chunk_bytes % 2:
        raise ValueError("chunk size must be even so that no 16-bit sample is split")
    current = _read_full(stream, chunk_bytes)
    if not current:
        raise InvalidInput("audio", "empty_audio", "audio file is empty")
    seq = 1
    while current:
        following = _read_full(stream, chunk_bytes)
        if seq >= start_seq:
            yield Chunk(seq, current, not following)
        current, seq = following, seq + 1


def _read_full(stream: BinaryIO, size: int) -> bytes:
    parts, remaining = [], size
    while remaining:
        block = stream.read(remaining)
        if not block:
            break
        parts.append(block)
        remaining -= len(block)
    return b"".join(parts)
