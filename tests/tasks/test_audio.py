"""Chunking: even sizes, IsEnd on the last chunk, resuming from a checkpoint."""

from __future__ import annotations

import io
import math

import pytest

from tasks.audio import chunk_count, iter_chunks
from vendors.errors import InvalidInput


class Trickle(io.RawIOBase):
    """A stream that hands out at most 7 bytes per read, like a slow socket."""

    def __init__(self, data: bytes) -> None:
        self.data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self.data.read(min(size, 7) if size > 0 else 7)


@pytest.mark.parametrize("size", [1, 2, 4095, 4096, 4097, 10240 * 3, 10240 * 3 + 2])
def test_chunks_cover_the_file_in_order(size):
    data = bytes(i % 251 for i in range(size))
    chunks = list(iter_chunks(Trickle(data), 4096))
    assert b"".join(c.data for c in chunks) == data
    assert [c.seq for c in chunks] == list(range(1, math.ceil(size / 4096) + 1))
    assert [c.is_end for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert all(len(c.data) % 2 == 0 for c in chunks[:-1])
    assert len(chunks) == chunk_count(size, 4096)


def test_resuming_skips_acknowledged_chunks():
    data = bytes(range(200)) * 100  # 20000 bytes: 5 chunks of 4096
    chunks = list(iter_chunks(io.BytesIO(data), 4096, start_seq=4))
    assert [c.seq for c in chunks] == [4, 5]
    assert chunks[0].data == data[3 * 4096: 4 * 4096] and chunks[-1].is_end


def test_resuming_past_the_end_yields_nothing():
    assert list(iter_chunks(io.BytesIO(b"ab" * 10), 4096, start_seq=2)) == []


def test_odd_chunk_size_is_refused():
    with pytest.raises(ValueError, match="even"):
        list(iter_chunks(io.BytesIO(b"abcd"), 3))


def test_empty_audio_is_a_permanent_error():
    with pytest.raises(InvalidInput) as info:
        list(iter_chunks(io.BytesIO(b""), 4096))
    assert info.value.reason == "empty_audio" and not info.value.retryable
