"""Reading audio for transmission: local files and http(s) URLs, in chunks.

A chunk never splits a 16-bit sample (chunk sizes are even) and the reader
looks one chunk ahead so the caller knows which chunk is the last without
holding the whole file in memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from vendors import http
from vendors.errors import InvalidInput, TransportError

URL_SCHEMES = ("http://", "https://")


@dataclass(frozen=True)
class Chunk:
    seq: int  # 1-based, as SOE's SeqId
    data: bytes
    is_end: bool


def is_url(ref: str) -> bool:
    return ref.startswith(URL_SCHEMES)


def chunk_count(size: int, chunk_bytes: int) -> int:
    return max(1, -(-size // chunk_bytes))


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
