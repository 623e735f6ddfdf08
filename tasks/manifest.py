"""Reading a manifest (CSV, JSON Lines or a folder of audio) into validated rows.

Every row comes out: a valid one as a :class:`JobSpec`, an invalid one with the
reason it is rejected, so nothing is silently dropped. Only a source that cannot be
read at all (missing, not UTF-8, not .csv/.jsonl, no header) raises
:class:`ManifestError`, before any row is yielded.

A row without a usable id is keyed ``#row N`` (its line, or its place in a folder); a
caller's id of that form is refused, so the two never collide.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from config.settings import SERVICES
from tasks import probe
from tasks.fields import MAX_CHARS, MAX_ID, kind, problem, shown
from tasks.limits import SoeLimits

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = {".wav", ".mp3", ".pcm", ".raw", ".m4a", ".amr", ".aac", ".wma", ".ogg", ".spx", ".speex"}
STREAM_SCHEMES = {"rtmp", "http", "https"}
LIVE_ONLY_SCHEMES = {"rtmp", "rtmps", "rtsp"}  # a live stream, never a file
STREAM_SERVICES = {"gme", "tupu"}
EVAL_MODES = {"word": 0, "sentence": 1, "paragraph": 2, "free": 3}
SOE_MODES = ("stream", "oneshot", "async")
TEXT_FIELDS = ("audio", "stream", "ref_text", "lang", "eval_mode", "soe_mode")
LIST_FIELDS = ("services", "keywords")  # text, or a JSON list of texts
NUMBER_FIELDS = ("score_coeff", "user_id", "room_id")  # text, or a JSON number
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_ROW_KEY = re.compile(r"#row [1-9][0-9]*")  # exactly what row_key() makes
SIDECAR_MAX_BYTES = 4 * MAX_CHARS


class ManifestError(Exception):
    """The source as a whole cannot be read (not CSV/JSONL, not UTF-8, missing)."""


@dataclass
class Defaults:
    services: list[str] | None = None
    ref_text: str | None = None
    lang: str | None = None
    callbacks: bool = False  # VOXQUEUE_CALLBACK_BASE_URL is set
    media_urls: bool = False  # VOXQUEUE_MEDIA_BASE_URL is set
    # False for a manifest that arrived over the network (the producers' API): a path on
    # this machine is not the sender's to name, so only http(s) URLs (and uploads) are taken.
    local_paths: bool = True
    soe_limits: SoeLimits | None = None  # None: from the settings

    def limits(self) -> SoeLimits:
        if self.soe_limits is None:
            self.soe_limits = SoeLimits.from_settings()
        return self.soe_limits


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


def row_key(number: int) -> str:
    """The key of a row that has no id of its own (a caller's id never has this form)."""
    return f"#row {number}"


def read_source(source: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, raw row) from a .csv, a .jsonl or a directory of audio files."""
    name = shown(str(source), 300)
    try:
        mode = source.stat().st_mode
    except (OSError, ValueError) as exc:
        raise ManifestError(f"no such manifest or directory: {name}" if isinstance(exc, FileNotFoundError)
                            else f"{name}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from exc
    if stat.S_ISDIR(mode):
        yield from _read_dir(source)
        return
    if probe.file_type(mode):
        raise ManifestError(f"{name}: not a regular file but {probe.file_type(mode)}")
    suffix = source.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson"):
        raise ManifestError(f"{name}: a manifest must be .csv or .jsonl, not {shown(suffix) or 'no extension'}")
    text = _read_text(source, name)
    yield from _read_csv(text, name) if suffix == ".csv" else _read_jsonl(text)


def _read_text(source: Path, name: str) -> str:
    try:
        with probe.open_regular(source) as fh:
            data = fh.read()
    except OSError as exc:
        raise ManifestError(f"{name}: cannot be read as a manifest ({exc.strerror or exc})") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{name}: not UTF-8 text (byte {exc.start})") from exc


def _read_csv(text: str, name: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows by their first line; a lone CR ends a line as CRLF and LF do (newline="")."""
    with _field_limit(len(text) + 1):  # no field is longer than the text: a long one is a row's problem
        reader = csv.reader(io.StringIO(text, newline=""))
        header = [h.strip() for h in next((cells for cells in reader if cells), [])]  # blank lines before it
        if "id" not in header:
            raise ManifestError(f"{name}: the CSV manifest needs a header row with an 'id' column")
        last = reader.line_num
        for cells in reader:
            number, last = last + 1, reader.line_num
            if cells:  # a blank line is no row
                yield number, dict(zip(header, cells, strict=False))


@contextlib.contextmanager
def _field_limit(limit: int) -> Iterator[None]:
    previous = csv.field_size_limit()
    csv.field_size_limit(max(previous, limit))
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _read_jsonl(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Lines end at "\\n" only (U+2028 in a string is text); a file with only CRs is split there."""
    newline = "\n" if "\n" in text or "\r" not in text else "\r"
    for number, line in enumerate(text.split(newline), start=1):
        if line.strip():
            yield number, _json_row(line)


def _json_row(line: str) -> dict[str, Any]:
    try:
        row = json.loads(line, parse_constant=_no_constant)
    except RecursionError:
        return {"__error__": "not valid JSON: nested too deeply"}
    except ValueError as exc:
        detail = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else str(exc)
        return {"__error__": f"not valid JSON ({shown(detail, 120)})"}
    return row if isinstance(row, dict) else {"__error__": f"not a JSON object ({kind(row)})"}


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _read_dir(folder: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Every audio file (a FIFO or device with an audio name too: it is rejected, not skipped)."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and not _is_dir(p))
    for number, path in enumerate(files, start=1):
        relative = path.relative_to(folder).as_posix()
        row: dict[str, Any] = {"id": relative, "audio": relative}
        if problem("", relative):
            row["__error__"] = f"file name is not valid UTF-8 text: {shown(relative)}"
        else:
            row.update(_sidecar(path.with_suffix(".txt"), relative))
        yield number, row


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # a name too long to stat: the row says so
        return False


def _sidecar(path: Path, relative: str) -> dict[str, Any]:
    """The reference text beside an audio file, if it is a regular file of UTF-8 text."""
    name = shown(Path(relative).with_suffix(".txt").as_posix())
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return {}
        with probe.open_regular(path) as fh:
            data = fh.read(SIDECAR_MAX_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        return {"__error__": f"reference text file {name} cannot be read ({exc.strerror or exc})"}
    if len(data) > SIDECAR_MAX_BYTES:
        return {"__error__": f"reference text file {name} is over {SIDECAR_MAX_BYTES:,} bytes"}
    try:
        return {"ref_text": data.decode("utf-8-sig").strip()}
    except UnicodeDecodeError as exc:
        return {"__error__": f"reference text file {name} is not UTF-8 text (byte {exc.start})"}


def validate(number: int, row: dict[str, Any], base: Path, defaults: Defaults) -> JobSpec:
    """Turn one raw row into a JobSpec; ``error`` says why it is rejected. Never raises."""
    try:
        return _validate(number, row, base, defaults)
    except Exception as exc:  # noqa: BLE001  (one bad row never sinks the batch: a fault we did not foresee is its reason)
        log.warning("row %s could not be validated: %s: %s", number, type(exc).__name__, shown(str(exc)))
        return JobSpec(row_key(number), None, number,
                       error=f"row could not be validated ({type(exc).__name__}: {shown(str(exc), 120)})")


def _validate(number: int, row: dict[str, Any], base: Path, defaults: Defaults) -> JobSpec:
    ext_id, id_error = _external_id(row.get("id"))
    key = ext_id if ext_id is not None and id_error is None else row_key(number)
    spec = JobSpec(key=key, external_id=ext_id, row=number)
    spec.error = row.get("__error__") or id_error or _field_error(row) or _fill(spec, row, base, defaults)
    if spec.error is None and ext_id is None:
        spec.error = "row has no id"
    return spec


def _external_id(raw: Any) -> tuple[str | None, str | None]:
    """(the id as recorded and reported, why it cannot be the row's key)."""
    if raw is None:
        return None, None
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        return None, f"id must be text or a whole number, not {kind(raw)}"
    value = str(raw).strip()
    if not value:
        return None, None  # an id of spaces is no id
    error = problem("id", value)
    if error or len(value) > MAX_ID:
        return shown(value, MAX_ID), error or f"id is {len(value):,} characters; at most {MAX_ID}"
    if _ROW_KEY.fullmatch(value):
        return value, f"id {value!r} has the form given to rows without an id; choose another id"
    return value, None


def _field_error(row: dict[str, Any]) -> str | None:
    """A field that is not text (or a list of texts, or a number where one is meant)."""
    for name in TEXT_FIELDS + LIST_FIELDS + NUMBER_FIELDS:
        value = row.get(name)
        if value is None:
            continue
        if isinstance(value, str):
            error = problem(name, value)
        elif isinstance(value, list) and name in LIST_FIELDS:
            error = _list_error(name, value)
        elif isinstance(value, int | float) and not isinstance(value, bool) and name in NUMBER_FIELDS:
            error = None
        else:
            wanted = "text or a number" if name in NUMBER_FIELDS else \
                "text or a list of texts" if name in LIST_FIELDS else "text"
            error = f"{name} must be {wanted}, not {kind(value)}"
        if error:
            return error
    return None


def _list_error(name: str, items: list[Any]) -> str | None:
    for i, item in enumerate(items, start=1):
        if not isinstance(item, str):
            return f"{name} must be strings; item {i} is {kind(item)}"
        error = problem(f"{name} item {i}", item)
        if error:
            return error
    if sum(len(item) for item in items) > MAX_CHARS:
        return f"{name} hold over {MAX_CHARS:,} characters"
    return None


def _fill(spec: JobSpec, row: dict[str, Any], base: Path, defaults: Defaults) -> str | None:
    audio, stream = _text(row.get("audio")), _text(row.get("stream"))
    error = _sources(spec, audio, stream, base, defaults)
    if error:
        return error
    services, error = _services(row, defaults, stream is not None)
    if error:
        return error
    spec.services = services
    error = _options(spec, row, defaults) or _check_delivery(spec, defaults)
    return error or _soe_limits(spec, defaults.limits()) or _check_audio(spec, defaults.limits())


def _sources(spec: JobSpec, audio: str | None, stream: str | None, base: Path, defaults: Defaults) -> str | None:
    if not audio and not stream:
        return "row has neither audio nor stream"
    if audio and stream:
        return "row has both audio and stream; give one"
    if stream:
        spec.stream = stream
        if not _URL.match(stream) or _scheme(stream) not in STREAM_SCHEMES:
            return f"stream must be an rtmp, http-flv or hls URL: {shown(stream)}"
        spec.stream, error = _url(stream)
        return error
    if _URL.match(audio):  # HTTP:// too: a scheme is case-insensitive
        spec.audio, scheme = audio, _scheme(audio)
        if scheme in LIVE_ONLY_SCHEMES:
            return f"{shown(scheme, 20)} is a live stream, not an audio file: give it as stream, not audio: {shown(audio)}"
        if scheme not in ("http", "https"):
            return f"an audio URL must be http or https, not {shown(scheme, 20)}: {shown(audio)}"
        spec.audio, error = _url(audio)
        return error
    if not defaults.local_paths:
        return f"local paths are not accepted here, only http(s) URLs and uploads: {shown(audio)}"
    path = os.path.abspath(base / audio)  # the name as given: a symlink keeps its suffix
    if problem("", path):  # the manifest's own folder has a name that is not UTF-8
        return f"audio path is not valid UTF-8 text: {shown(path)}"
    spec.audio = path
    spec.options["audio_rel"] = Path(audio).as_posix()  # under VOXQUEUE_MEDIA_BASE_URL
    return None


def _scheme(url: str) -> str:
    return url.split(":", 1)[0].lower()


def _url(value: str) -> tuple[str, str | None]:
    """(the URL with its scheme in lower case, why it is malformed)."""
    if any(c.isspace() or not c.isprintable() for c in value):
        return value, f"malformed URL (a space or control character in it): {shown(value)}"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number from 0 to 65535)
    except ValueError as exc:
        return value, f"malformed URL ({shown(str(exc), 80)}): {shown(value)}"
    if not parts.hostname:
        return value, f"malformed URL (no host): {shown(value)}"
    return parts.scheme.lower() + value[len(parts.scheme):], None


def _services(row: dict[str, Any], defaults: Defaults, is_stream: bool) -> tuple[list[str], str | None]:
    raw = row.get("services")
    if isinstance(raw, list):
        names = [s.strip() for s in raw]
    elif raw:
        names = [s.strip() for s in str(raw).split(",")]
    else:
        names = list(defaults.services or (["gme"] if is_stream else ["soe"]))
    names = list(dict.fromkeys(n for n in names if n))
    unknown = [shown(n, 40) for n in names if n not in SERVICES]
    if unknown:
        return [], f"unknown service {', '.join(unknown[:5])} (known: {', '.join(SERVICES)})"
    if is_stream and set(names) - STREAM_SERVICES:
        return [], "a stream can only go to gme or tupu"
    return names, None


def _options(spec: JobSpec, row: dict[str, Any], defaults: Defaults) -> str | None:
    opts = spec.options
    opts["ref_text"] = _text(row.get("ref_text")) or defaults.ref_text
    lang = _text(row.get("lang")) or defaults.lang or "en"
    if lang not in ("en", "zh"):
        return f"lang must be en or zh, not {shown(lang, 40)}"
    opts["lang"] = lang
    mode = _text(row.get("eval_mode")) or "sentence"
    if mode not in EVAL_MODES:
        return f"eval_mode must be one of {', '.join(EVAL_MODES)}, not {shown(mode, 40)}"
    opts["eval_mode"] = EVAL_MODES[mode]
    coeff, error = _score_coeff(row.get("score_coeff"))
    if error:
        return error
    opts["score_coeff"] = coeff
    soe_mode = _text(row.get("soe_mode")) or "stream"
    if soe_mode not in SOE_MODES:
        return f"soe_mode must be stream, oneshot or async, not {shown(soe_mode, 40)}"
    opts["soe_mode"] = soe_mode
    opts["keywords"] = _keywords(row.get("keywords"))
    if soe_mode == "async" and opts["keywords"] and "soe" in spec.services:
        return "soe_mode async cannot evaluate keywords: KeywordEvaluate has no async mode"
    for name in ("user_id", "room_id"):
        if _text(row.get(name)):
            opts[name] = _text(row.get(name))
    if "soe" in spec.services and not opts["ref_text"] and not opts["keywords"]:
        return "soe needs ref_text (or keywords)"
    return None


def _score_coeff(raw: Any) -> tuple[float, str | None]:
    """A finite number from 1.0 to 4.0 (NaN or infinity would be stored as JSON that is not JSON)."""
    text = _text(raw)
    if text is None:
        return 1.0, None
    try:
        value = float(raw if isinstance(raw, int | float) else text)
    except (ValueError, OverflowError):
        return 1.0, f"score_coeff is not a number: {shown(text, 40)}"
    if not math.isfinite(value):
        return 1.0, f"score_coeff must be a finite number from 1.0 to 4.0, not {shown(text, 40)}"
    if not 1.0 <= value <= 4.0:
        return 1.0, f"score_coeff must be between 1.0 and 4.0, not {value}"
    return value, None


def _keywords(value: Any) -> list[str]:
    if isinstance(value, list):
        return [v.strip() for v in value if v.strip()]
    return [k.strip() for k in str(value or "").split("|") if k.strip()]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    value = str(value).strip()
    return value or None


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


def _soe_limits(spec: JobSpec, limits: SoeLimits) -> str | None:
    """Reference text (and each keyword) within the words SOE takes in the row's mode."""
    if "soe" not in spec.services:
        return None
    opts = spec.options
    if opts["keywords"]:
        return next(filter(None, (limits.text_error(k, opts["eval_mode"], f"keyword {i}")
                                  for i, k in enumerate(opts["keywords"], start=1))), None)
    return limits.text_error(opts["ref_text"] or "", opts["eval_mode"])


def _check_audio(spec: JobSpec, limits: SoeLimits) -> str | None:
    """Cheap checks of a local file now (its type and first bytes; for SOE, whether it decodes
    and how long it is), so a bad file never reaches a vendor."""
    if not spec.audio or spec.audio.startswith(("http://", "https://")):
        return None
    mode = spec.options.get("eval_mode", 1)
    return probe.check(Path(spec.audio), spec.services, lambda seconds: limits.audio_error(seconds, mode))
