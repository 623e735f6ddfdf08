"""Audio SOE cannot take, made into what it can: 16 kHz mono 16-bit PCM, with PyAV.

SOE takes 16 kHz mono 16-bit audio (raw PCM or WAV; its MP3 and Speex paths want the
same rate and channel count). Phones record m4a; people send ogg, amr, wma, mp3 and
WAVs at 44.1 kHz in stereo. PyAV is FFmpeg's decoders and resampler in a wheel.

Both functions stream. :func:`probe` reads the container's header and decodes its
first frame only (ingest calls it, once per file that is not already SOE's format);
:func:`decode` writes the converted samples out frame by frame, so memory stays flat
whatever the file's length, and stops as soon as the output passes ``max_bytes``.
The same file always decodes to the same bytes (FFmpeg's decoders and resampler are
deterministic), so a transmission resumed by another delivery sends the chunks the
first one did.

PyAV is imported on first use: ingest of SOE-format WAVs (the common case) and the
workers that never decode pay nothing for it.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO

RATE = 16000
BYTES_PER_SECOND = RATE * 2  # 16-bit mono
# Decoding runs in this many threads of its own per process, whichever worker thread asks. It is CPU
# work (more at once would not finish sooner on two cores), and every thread that ever decodes keeps
# FFmpeg's buffers in its own malloc arena: decoding in a worker's sixteen threads left the process
# 12 MiB larger than in two.
DECODERS_PER_PROCESS = 2
_pool: tuple[int, ThreadPoolExecutor] | None = None
_pool_lock = threading.Lock()


class Unreadable(Exception):
    """No decoder can read the audio; the message says why, in a few words."""


class TooLong(Exception):
    """The decoded audio passed the limit it was decoded against."""


@dataclass(frozen=True)
class Probed:
    seconds: float | None  # None: the container does not say
    codec: str


def _av():
    import av

    return av


def probe(source: str | BinaryIO) -> Probed:
    """The audio's length and codec, having decoded its first frame; :class:`Unreadable` if none."""
    av = _av()
    try:
        with av.open(source, metadata_errors="ignore") as container:
            stream = _audio_stream(container)
            seconds = _seconds(container, stream)
            if next(container.decode(stream), None) is None:
                raise Unreadable("no audio frame in it could be decoded")
            return Probed(seconds, stream.codec_context.name)
    except av.FFmpegError as exc:
        raise Unreadable(_why(exc)) from None
    except (ValueError, UnicodeDecodeError, OverflowError) as exc:  # a header PyAV cannot represent
        raise Unreadable(f"{type(exc).__name__}: {str(exc)[:80]}") from None


def decode(source: str | BinaryIO, out: BinaryIO, *, max_bytes: int | None = None) -> int:
    """Decode ``source`` into ``out`` as 16 kHz mono 16-bit little-endian PCM; the bytes written.

    Raises :class:`Unreadable` when it cannot be decoded (also part-way: a corrupt packet)
    and :class:`TooLong` once the output passes ``max_bytes``. Runs in a decoding thread.
    """
    return _decoders().submit(_decode, source, out, max_bytes).result()


def _decoders() -> ThreadPoolExecutor:
    """This process's decoding threads (made anew in a forked child: the parent's are not there)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(DECODERS_PER_PROCESS, thread_name_prefix="decoder"))
        return _pool[1]


def _decode(source: str | BinaryIO, out: BinaryIO, max_bytes: int | None) -> int:
    av = _av()
    written = 0
    try:
        with av.open(source, metadata_errors="ignore") as container:
            stream = _audio_stream(container)
            resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
            for frame in container.decode(stream):
                written += _write(resampler.resample(frame), out)
                if max_bytes is not None and written > max_bytes:
                    raise TooLong(written)
            written += _write(resampler.resample(None), out)
    except av.FFmpegError as exc:
        raise Unreadable(_why(exc)) from None
    except ValueError as exc:  # the stream changed its rate or layout part-way
        raise Unreadable(f"{type(exc).__name__}: {str(exc)[:80]}") from None
    if written == 0:
        raise Unreadable("it holds no audio samples")
    return written


def _audio_stream(container: Any) -> Any:
    streams = container.streams.audio
    if not streams:
        raise Unreadable("it holds no audio stream")
    return streams[0]


def _seconds(container: Any, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:  # in AV_TIME_BASE units (microseconds)
        return container.duration / 1_000_000
    return None


def _write(frames: list[Any], out: BinaryIO) -> int:
    """Packed s16 mono: a frame's samples are the first ``2 * samples`` bytes of its plane (the
    plane may be padded beyond them)."""
    count = 0
    for frame in frames:
        data = memoryview(frame.planes[0])[: 2 * frame.samples]
        out.write(data)
        count += len(data)
    return count


def _why(exc: Exception) -> str:
    """FFmpeg's words (``Invalid data found when processing input``), never the file's path."""
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(": '")[0][:120] or type(exc).__name__
