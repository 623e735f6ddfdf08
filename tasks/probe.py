"""A first look at a local audio file at ingest: cheap, by its content, and never blocking.

Only a regular file is opened (a symlink is followed only to one): a device, a FIFO, a
socket or a directory is refused by its type from ``stat()`` before anything is opened, so
``/dev/zero`` or a FIFO never floods or blocks ingestion; the open itself is non-blocking
and checked again with ``fstat()``. What a file is comes from its first 4 KB (magic bytes),
not from its name: a ``.wav`` that holds text is refused whatever it is called. A WAV's
header is read with the wave module (header only, not the samples).

An odd-sized 16-bit file is refused rather than padded: it is a truncated file (the last
sample is cut), and padding would mean sending bytes the file does not hold.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import stat
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from tasks.fields import shown

HEAD = 4096
SOE_MAX_BYTES = 3 * 1024 * 1024
_FAMILY = {".wav": "wav", ".mp3": "mp3", ".aac": "aac", ".m4a": "m4a", ".ogg": "ogg",
           ".spx": "ogg", ".speex": "ogg", ".amr": "amr", ".wma": "wma", ".pcm": "pcm", ".raw": "pcm"}
_NAMES = {"wav": "WAV", "mp3": "MP3", "aac": "AAC", "m4a": "M4A (MP4)", "ogg": "Ogg", "amr": "AMR",
          "wma": "WMA (ASF)", "flac": "FLAC", "text": "text", "pcm": "raw PCM"}
_ASF = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
_TYPES = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISSOCK, "a socket"))


def check(path: Path, services: list[str]) -> str | None:
    """Why the local file ``path`` cannot be sent to ``services``, or None."""
    where = shown(str(path), 300)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return f"audio file not found{' (a symlink to nothing)' if os.path.islink(path) else ''}: {where}"
    except OSError as exc:
        return f"audio file cannot be read ({exc.strerror}): {where}"
    not_regular = file_type(info.st_mode)
    if not_regular:
        return f"audio path is {not_regular}, not a regular file: {where}"
    if info.st_size == 0:
        return f"audio file is empty: {where}"
    if "soe" in services and info.st_size > SOE_MAX_BYTES:
        return f"audio is {info.st_size} bytes; SOE takes at most 3 MB"
    try:
        with open_regular(path) as fh:
            return _content(fh, path, info.st_size, services)
    except OSError as exc:
        return f"audio file cannot be read ({exc.strerror or exc}): {where}"


def file_type(mode: int) -> str | None:
    """What a file that is not a regular one is ("a FIFO (named pipe)", ...); None for a regular file."""
    return next((name for test, name in _TYPES if test(mode)), None)


@contextlib.contextmanager
def open_regular(path: Path) -> Iterator[BinaryIO]:
    """``path`` opened for reading if it is (still) a regular file; OSError otherwise."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        not_regular = file_type(os.fstat(fd).st_mode)
        if not_regular:
            raise OSError(f"not a regular file but {not_regular}")
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with fh:
        yield fh


def _content(fh: BinaryIO, path: Path, size: int, services: list[str]) -> str | None:
    head = fh.read(HEAD)
    found = sniff(head)
    family = _FAMILY.get(path.suffix.lower()) or _family_of(found)
    where = shown(str(path), 300)
    if family is None:
        return ("not a recognised audio file (wav, mp3, m4a/aac, ogg, amr, wma; raw PCM needs "
                f"a .pcm or .raw name){_looks(found)}: {where}")
    if family == "pcm":
        if found:
            return f"not raw PCM audio{_looks(found)}: {where}"
        if size % 2:
            return f"raw PCM is {size} bytes, an odd size: not whole 16-bit samples (a truncated file?): {where}"
        return None
    if not _matches(family, found, head):
        return f"not a readable {_NAMES[family]} file{_looks(found, family)}: {where}"
    return _wav(fh, path, size, services) if family == "wav" else None


def sniff(head: bytes) -> str | None:
    """The format a file's first bytes announce (a magic number), "text", or None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    for magic, name in ((b"ID3", "mp3"), (b"OggS", "ogg"), (b"#!AMR", "amr"), (b"fLaC", "flac"), (_ASF, "wma")):
        if head.startswith(magic):
            return name
    if head[4:8] == b"ftyp":
        return "m4a"
    return "text" if _is_text(head) else None


def _is_text(head: bytes) -> bool:
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\t\n\r\f\v\ufeff" for c in text)


def _family_of(found: str | None) -> str | None:
    return found if found in _FAMILY.values() else None


def _matches(family: str, found: str | None, head: bytes) -> bool:
    if family == "mp3":  # frames may follow padding: a frame sync anywhere in the head
        return found == "mp3" or (found is None and _sync(head, adts=False))
    if family == "aac":  # ADTS frames, or AAC in an MP4 container under an .aac name
        return found in ("m4a", "mp3") or (found is None and _sync(head, adts=True))
    return found == family


def _sync(head: bytes, *, adts: bool) -> bool:
    at = head.find(b"\xff")
    while 0 <= at < len(head) - 1:
        second = head[at + 1]
        if adts and second & 0xF6 == 0xF0:
            return True
        if not adts and second & 0xE0 == 0xE0 and (second >> 3) & 3 != 1 and (second >> 1) & 3:
            return True
        at = head.find(b"\xff", at + 1)
    return False


def _looks(found: str | None, family: str | None = None) -> str:
    if found == "text":
        return " (it looks like text)"
    if found and found != family:
        return f" (it holds {_NAMES[found]} audio)"
    return " (no header of that format)" if family else ""


def _wav(fh: BinaryIO, path: Path, size: int, services: list[str]) -> str | None:
    """The WAV header: SOE's format, and data that is whole frames (else the file is cut)."""
    fh.seek(0)
    try:
        with wave.open(fh) as w:
            rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
            data_start = fh.tell()  # the wave module stops right after the data chunk's header
    except Exception as exc:  # noqa: BLE001  (wave parses untrusted bytes: besides wave.Error and EOFError a
        # crafted header raises RuntimeError, struct.error, ...; every one means "not readable")
        # Moderation vendors decode more kinds of WAV than the wave module reads; SOE does not.
        reason = shown(str(exc), 80) or type(exc).__name__
        return f"not a readable WAV file ({reason}): {shown(str(path), 300)}" if "soe" in services else None
    if "soe" in services and (rate, channels, width) != (16000, 1, 2):
        return (f"SOE needs 16 kHz mono 16-bit WAV; {shown(path.name)} is {rate} Hz, {channels} channel(s), "
                f"{8 * width}-bit (rejected, not converted)")
    fh.seek(data_start - 4)
    declared = int.from_bytes(fh.read(4), "little")
    held = min(declared, size - data_start)  # streamed WAVs declare 0xFFFFFFFF: what is there counts
    if held % (channels * width):
        return (f"WAV data is {held} bytes, not whole {channels * width}-byte frames "
                f"(a truncated file?): {shown(str(path), 300)}")
    if "soe" in services and size % 2:
        return f"audio file is {size} bytes, an odd size: SOE takes 16-bit audio in even chunks: {shown(str(path), 300)}"
    return None
