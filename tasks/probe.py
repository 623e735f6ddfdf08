"""A first look at a local audio file at ingest: cheap, by its content, and never blocking.

Only a regular file is opened (a symlink is followed only to one): a device, a FIFO, a
socket or a directory is refused by its type from ``stat()`` before anything is opened, so
``/dev/zero`` or a FIFO never floods or blocks ingestion; the open itself is non-blocking
and checked again with ``fstat()``. What a file is comes from its first 4 KB (magic bytes),
not from its name: a ``.wav`` that holds text is refused whatever it is called. A WAV's
header is read with the wave module (header only, not the samples). For SOE, audio that
must be converted (:mod:`tasks.decoder`) is probed with PyAV: its header and first frame,
so ingest refuses what no decoder reads and what is longer than SOE takes, without
decoding the file; a 16 kHz mono WAV (SOE's own format, the common case) costs no probe.

An odd-sized 16-bit file is refused rather than padded: it is a truncated file (the last
sample is cut), and padding would mean sending bytes the file does not hold.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import stat
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tasks import decoder
from tasks.fields import shown

HEAD = 4096
BYTES_PER_SECOND = decoder.BYTES_PER_SECOND
LengthRule = Callable[[float], "str | None"]  # seconds -> why audio that long is refused, or None
_FAMILY = {".wav": "wav", ".mp3": "mp3", ".aac": "aac", ".m4a": "m4a", ".ogg": "ogg",
           ".spx": "ogg", ".speex": "ogg", ".amr": "amr", ".wma": "wma", ".pcm": "pcm", ".raw": "pcm"}
_NAMES = {"wav": "WAV", "mp3": "MP3", "aac": "AAC", "m4a": "M4A (MP4)", "ogg": "Ogg", "amr": "AMR",
          "wma": "WMA (ASF)", "flac": "FLAC", "text": "text", "pcm": "raw PCM"}
_ASF = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
_TYPES = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISSOCK, "a socket"))


def check(path: Path, services: list[str], too_long: LengthRule | None = None) -> str | None:
    """Why the local file ``path`` cannot be sent to ``services``, or None.

    For SOE, a file that is not a 16 kHz mono 16-bit WAV (or raw PCM) must be decodable:
    a WAV's header says so, anything else is probed with PyAV (its header and first frame,
    never the whole file). ``too_long(seconds)`` says why audio that long is refused (SOE's
    limit for the row's mode), or None.
    """
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
    look = _Look(path, info.st_size, "soe" in services, too_long)
    try:
        with open_regular(path) as fh:
            return _content(fh, look)
    except OSError as exc:
        return f"audio file cannot be read ({exc.strerror or exc}): {where}"


@dataclass(frozen=True)
class _Look:
    """What the checks of one file need to know."""

    path: Path
    size: int
    soe: bool  # SOE is among its services: its format and length matter
    too_long: LengthRule | None

    @property
    def where(self) -> str:
        return shown(str(self.path), 300)

    def length_error(self, seconds: float | None) -> str | None:
        if not self.soe or self.too_long is None or seconds is None:
            return None
        return self.too_long(seconds)


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


def _content(fh: BinaryIO, look: _Look) -> str | None:
    head = fh.read(HEAD)
    found = sniff(head)
    family = _FAMILY.get(look.path.suffix.lower()) or _family_of(found)
    if family is None:
        return ("not a recognised audio file (wav, mp3, m4a/aac, ogg, amr, wma; raw PCM needs "
                f"a .pcm or .raw name){_looks(found)}: {look.where}")
    if family == "pcm":
        if found:
            return f"not raw PCM audio{_looks(found)}: {look.where}"
        if look.size % 2:
            return (f"raw PCM is {look.size} bytes, an odd size: not whole 16-bit samples "
                    f"(a truncated file?): {look.where}")
        return look.length_error(look.size / BYTES_PER_SECOND)  # 16 kHz mono 16-bit, as SOE takes it
    if not _matches(family, found, head):
        return f"not a readable {_NAMES[family]} file{_looks(found, family)}: {look.where}"
    if family == "wav":
        return _wav(fh, look)
    return _decodable(look, family) if look.soe else None  # moderation vendors decode these themselves


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


@dataclass(frozen=True)
class WavHeader:
    rate: int
    channels: int
    width: int  # bytes per sample
    data_start: int  # offset of the samples
    declared: int  # the data chunk's size as its header says (0xFFFFFFFF when streamed)

    @property
    def soe_native(self) -> bool:
        """SOE's own format: sent as it is, not decoded."""
        return (self.rate, self.channels, self.width) == (16000, 1, 2)


def wav_header(fh: BinaryIO) -> WavHeader | None:
    """A PCM WAV's header, read with the wave module (not the samples); None if it reads none."""
    return _read_wav(fh)[0]


def _read_wav(fh: BinaryIO) -> tuple[WavHeader | None, str | None]:
    fh.seek(0)
    try:
        with wave.open(fh) as w:
            rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
            data_start = fh.tell()  # the wave module stops right after the data chunk's header
    except Exception as exc:  # noqa: BLE001  (wave parses untrusted bytes: besides wave.Error and EOFError a
        # crafted header raises RuntimeError, struct.error, ...; every one means "not readable")
        return None, shown(str(exc), 80) or type(exc).__name__
    fh.seek(data_start - 4)
    return WavHeader(rate, channels, width, data_start, int.from_bytes(fh.read(4), "little")), None


def _wav(fh: BinaryIO, look: _Look) -> str | None:
    """The WAV header: data that is whole frames (else the file is cut), and for SOE its length;
    a WAV the wave module cannot read (not PCM: float, ADPCM, extensible) is probed for SOE."""
    header, reason = _read_wav(fh)
    if header is None:
        # Moderation vendors decode more kinds of WAV than the wave module reads; for SOE, PyAV must.
        return _decodable(look, "wav", wave_says=reason) if look.soe else None
    held = min(header.declared, look.size - header.data_start)  # streamed WAVs declare 0xFFFFFFFF
    frame = header.channels * header.width
    if frame == 0 or header.rate == 0:
        return f"not a readable WAV file (it declares {header.channels} channels at {header.rate} Hz): {look.where}"
    if held % frame:
        return (f"WAV data is {held} bytes, not whole {frame}-byte frames "
                f"(a truncated file?): {look.where}")
    if look.soe and header.soe_native and look.size % 2:
        return (f"audio file is {look.size} bytes, an odd size: SOE takes 16-bit audio in even chunks: "
                f"{look.where}")
    return look.length_error(held / (frame * header.rate))


def _decodable(look: _Look, family: str, wave_says: str | None = None) -> str | None:
    """PyAV reads the file's header and its first frame; its length must be within SOE's limit."""
    probed = _probe(look.path)
    if isinstance(probed, str):
        why = f"{wave_says}; {probed}" if wave_says else probed
        return f"not a readable {_NAMES[family]} file: no decoder can read it ({why}): {look.where}"
    return look.length_error(probed.seconds)


_PROBED: dict[tuple[int, ...], decoder.Probed | str] = {}
_PROBED_MAX = 4096


def _probe(path: Path) -> decoder.Probed | str:
    """:func:`decoder.probe`, or why it failed; once per file (by its identity and modification
    time) while a process runs: about 0.4 ms a file, and a manifest may name a file many times."""
    info = os.stat(path)
    key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
    if key not in _PROBED:
        try:
            found: decoder.Probed | str = decoder.probe(str(path))
        except decoder.Unreadable as exc:
            found = str(exc)
        if len(_PROBED) >= _PROBED_MAX:
            _PROBED.clear()
        _PROBED[key] = found
    return _PROBED[key]
