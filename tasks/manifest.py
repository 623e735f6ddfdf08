"""Reading a manifest (CSV, JSON Lines or a folder of audio) into validated rows.

Every row comes out: a valid one as a :class:`JobSpec`, an invalid one with the
reason it is rejected, so nothing is silently dropped.
"""

from __future__ import annotations

import csv
import io
import json
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from config.settings import SERVICES

AUDIO_SUFFIXES = {".wav", ".mp3", ".pcm", ".raw", ".m4a", ".amr", ".aac", ".wma", ".ogg", ".spx", ".speex"}
STREAM_SCHEMES = {"rtmp", "http", "https"}
STREAM_SERVICES = {"gme", "tupu"}
EVAL_MODES = {"word": 0, "sentence": 1, "paragraph": 2, "free": 3}


class ManifestError(Exception):
    """The source as a whole cannot be read (not CSV/JSONL, not UTF-8, missing)."""


@dataclass
class Defaults:
    services: list[str] | None = None
    ref_text: str | None = None
    lang: str | None = None
    callbacks: bool = False  # VOXQUEUE_CALLBACK_BASE_URL is set
    media_urls: bool = False  # VOXQUEUE_MEDIA_BASE_URL is set


@dataclass
class JobSpec:
    key: str
    external_id: str | None
    row: int = 0  # the row number in the manifest (line for JSONL and CSV)
    audio: str | None = None
    stream: str | None = None
    services: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # set: the row is rejected with this reason


def read_source(source: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, raw row) from a .csv, a .jsonl or a directory of audio files."""
    if source.is_dir():
        yield from _read_dir(source)
        return
    if not source.is_file():
        raise ManifestError(f"no such manifest or directory: {source}")
    try:
        text = source.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{source}: not UTF-8 text (byte {exc.start})") from exc
    suffix = source.suffix.lower()
    if suffix == ".csv":
        yield from _read_csv(text)
    elif suffix in (".jsonl", ".ndjson"):
        yield from _read_jsonl(text)
    else:
        raise ManifestError(f"{source}: a manifest must be .csv or .jsonl, not {suffix or 'no extension'}")


def _read_csv(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "id" not in [f.strip() for f in reader.fieldnames]:
        raise ManifestError("the CSV manifest needs a header row with an 'id' column")
    for number, row in enumerate(reader, start=2):
        yield number, {(k or "").strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items()}


def _read_jsonl(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = {"__error__": "not valid JSON"}
        yield number, row if isinstance(row, dict) else {"__error__": "not a JSON object"}


def _read_dir(folder: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    for number, path in enumerate(files, start=1):
        relative = path.relative_to(folder).as_posix()
        row: dict[str, Any] = {"id": relative, "audio": relative}
        sidecar = path.with_suffix(".txt")  # the reference text beside the audio
        if sidecar.is_file():
            row["ref_text"] = sidecar.read_text(encoding="utf-8").strip()
        yield number, row


def validate(number: int, row: dict[str, Any], base: Path, defaults: Defaults) -> JobSpec:
    """Turn one raw row into a JobSpec; ``error`` says why it is rejected."""
    raw_id = row.get("id")
    ext_id = str(raw_id).strip() if raw_id not in (None, "") else None
    spec = JobSpec(key=ext_id or f"#row {number}", external_id=ext_id, row=number)
    spec.error = row.get("__error__") or _fill(spec, row, base, defaults)
    if spec.error is None and ext_id is None:
        spec.error = "row has no id"
    return spec


def _fill(spec: JobSpec, row: dict[str, Any], base: Path, defaults: Defaults) -> str | None:
    audio, stream = _text(row.get("audio")), _text(row.get("stream"))
    if audio and audio.startswith(("http://", "https://")):
        spec.audio = audio
    elif audio:
        spec.audio = str((base / audio).resolve())
        spec.options["audio_rel"] = Path(audio).as_posix()  # under VOXQUEUE_MEDIA_BASE_URL
    spec.stream = stream
    error = _check_sources(audio, stream)
    if error:
        return error
    services, error = _services(row, defaults, stream is not None)
    if error:
        return error
    spec.services = services
    error = _options(spec, row, defaults) or _check_delivery(spec, defaults)
    return error or _check_audio(spec)


def _check_delivery(spec: JobSpec, defaults: Defaults) -> str | None:
    """Vendors that cannot work with the current configuration are refused before sending."""
    for service in ("asr", "tupu"):
        if service in spec.services and not defaults.callbacks:
            return f"{service} delivers results only by callback: set VOXQUEUE_CALLBACK_BASE_URL"
    local = spec.audio is not None and not spec.audio.startswith(("http://", "https://"))
    if "gme" in spec.services and local and not defaults.media_urls:
        return "gme only takes URLs: set VOXQUEUE_MEDIA_BASE_URL to serve local files"
    if "tupu" in spec.services and not spec.stream:
        return "tupu moderates live streams: give a stream URL"
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _check_sources(audio: str | None, stream: str | None) -> str | None:
    if not audio and not stream:
        return "row has neither audio nor stream"
    if audio and stream:
        return "row has both audio and stream; give one"
    for value in (audio, stream):
        if value and "://" in value and not _valid_url(value):
            return f"malformed URL: {value}"
    if stream and urlparse(stream).scheme not in STREAM_SCHEMES:
        return f"stream must be an rtmp, http-flv or hls URL: {stream}"
    return None


def _valid_url(value: str) -> bool:
    parsed = urlparse(value)
    return parsed.scheme in ("http", "https", "rtmp") and bool(parsed.netloc) and " " not in value


def _services(row: dict[str, Any], defaults: Defaults, is_stream: bool) -> tuple[list[str], str | None]:
    raw = row.get("services")
    if isinstance(raw, list):
        names = [str(s).strip() for s in raw]
    elif raw:
        names = [s.strip() for s in str(raw).split(",")]
    else:
        names = list(defaults.services or (["gme"] if is_stream else ["soe"]))
    names = list(dict.fromkeys(n for n in names if n))
    unknown = [n for n in names if n not in SERVICES]
    if unknown:
        return [], f"unknown service {', '.join(unknown)} (known: {', '.join(SERVICES)})"
    if is_stream and set(names) - STREAM_SERVICES:
        return [], "a stream can only go to gme or tupu"
    return names, None


def _options(spec: JobSpec, row: dict[str, Any], defaults: Defaults) -> str | None:
    opts = spec.options
    opts["ref_text"] = _text(row.get("ref_text")) or defaults.ref_text
    opts["lang"] = _text(row.get("lang")) or defaults.lang or "en"
    if opts["lang"] not in ("en", "zh"):
        return f"lang must be en or zh, not {opts['lang']}"
    mode = _text(row.get("eval_mode")) or "sentence"
    if mode not in EVAL_MODES:
        return f"eval_mode must be one of {', '.join(EVAL_MODES)}, not {mode}"
    opts["eval_mode"] = EVAL_MODES[mode]
    try:
        opts["score_coeff"] = float(_text(row.get("score_coeff")) or 1.0)
    except ValueError:
        return f"score_coeff is not a number: {row.get('score_coeff')}"
    if not 1.0 <= opts["score_coeff"] <= 4.0:
        return f"score_coeff must be between 1.0 and 4.0, not {opts['score_coeff']}"
    opts["soe_mode"] = _text(row.get("soe_mode")) or "stream"
    if opts["soe_mode"] not in ("stream", "oneshot"):
        return f"soe_mode must be stream or oneshot, not {opts['soe_mode']}"
    opts["keywords"] = _keywords(row.get("keywords"))
    for name in ("user_id", "room_id"):
        if _text(row.get(name)):
            opts[name] = _text(row.get(name))
    if "soe" in spec.services and not opts["ref_text"] and not opts["keywords"]:
        return "soe needs ref_text (or keywords)"
    return None


def _keywords(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [k.strip() for k in str(value or "").split("|") if k.strip()]


def _check_audio(spec: JobSpec) -> str | None:
    """Cheap checks of a local file now, so a bad file never reaches a vendor."""
    if not spec.audio or spec.audio.startswith(("http://", "https://")):
        return None
    path = Path(spec.audio)
    if not path.is_file():
        return f"audio file not found: {path}"
    size = path.stat().st_size
    if size == 0:
        return f"audio file is empty: {path}"
    if "soe" in spec.services and size > 3 * 1024 * 1024:
        return f"audio is {size} bytes; SOE takes at most 3 MB"
    if "soe" in spec.services and path.suffix.lower() == ".wav":
        return _check_wav(path)
    return None


def _check_wav(path: Path) -> str | None:
    try:
        with wave.open(str(path), "rb") as w:
            rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
    except (wave.Error, EOFError) as exc:
        return f"not a readable WAV file ({exc}): {path}"
    if (rate, channels, width) != (16000, 1, 2):
        return f"SOE needs 16 kHz mono 16-bit WAV; {path.name} is {rate} Hz, {channels} channel(s), {8 * width}-bit (rejected, not converted)"
    return None
