"""Property-based fuzzing of the manifest reader (issue 20), bounded and derandomized for CI.

Properties: reading never raises anything but the whole-source ``ManifestError``; every row
comes out as exactly one spec; a rejected spec carries a one-line, printable reason; and
(on SQLite and PostgreSQL) every row is recorded as one consistent job.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks import probe
from tasks.ingest import ingest
from tasks.manifest import Defaults, ManifestError, read_source, validate
from tests.tasks.manifest_checks import assert_consistent, write_wav

FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None)
FIELDS = ["id", "audio", "stream", "ref_text", "services", "lang", "eval_mode", "score_coeff", "soe_mode",
          "keywords", "user_id", "notes"]
NAMES = ["good.wav", "odd.wav", "text.wav", "clip.pcm", "pipe.wav", "", "http://[::1/a.wav",
         "HTTP://example.com/a.wav", "rtmp://example.com/live", "/dev/zero", "missing.wav", "#row 2"]
CHARS = st.characters(exclude_categories=[])  # every code point: NULs, controls, lone surrogates
UTF8_CHARS = st.characters(exclude_categories=["Cs"])  # what a UTF-8 file can hold
CELL = st.one_of(st.sampled_from(NAMES), st.text(UTF8_CHARS, max_size=30),
                 st.sampled_from(["nan", "inf", "1e999", "4", "soe", "gme,tupu", "  ", "\r", "\n", "\u2028"]))
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(CHARS, max_size=20) | st.sampled_from(NAMES),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Files the fuzzed rows may name: good, odd-sized, text, raw PCM, a FIFO."""
    data = tmp_path_factory.mktemp("fuzz")
    write_wav(data / "good.wav")
    (data / "odd.wav").write_bytes((data / "good.wav").read_bytes() + b"\x00")
    (data / "text.wav").write_text("not audio\n")
    (data / "clip.pcm").write_bytes(b"\x01\x00" * 100)
    os.mkfifo(data / "pipe.wav")
    return data


def specs_of(path: Path, defaults: Defaults | None = None) -> list:
    return [validate(n, row, path.parent, defaults or Defaults(ref_text="red")) for n, row in read_source(path)]


def assert_well_formed(specs: list) -> None:
    for spec in specs:
        if spec.error is not None:
            assert spec.error and spec.error.isprintable(), repr(spec.error)  # one line, no escapes
            assert "could not be validated" not in spec.error, spec.error  # no unforeseen fault
        else:
            assert spec.external_id == spec.key and spec.services


def csv_text(rows: list[dict[str, str]], newline: str, quote_all: bool) -> str:
    """The rows as RFC 4180 writes them: a field holding a CR or a LF is quoted (Python's writer
    quotes only the characters of its own line terminator, so such rows are quoted whole). An
    unquoted CR or LF ends a line, whichever convention the file uses: CR-only files read."""
    out = io.StringIO()
    breaks = any("\r" in v or "\n" in v for row in rows for v in row.values())
    quoting = csv.QUOTE_ALL if quote_all or breaks else csv.QUOTE_MINIMAL
    writer = csv.DictWriter(out, FIELDS, lineterminator=newline, quoting=quoting)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


@FUZZ
@given(rows=st.lists(st.fixed_dictionaries({}, optional={f: CELL for f in FIELDS}), max_size=6),
       newline=st.sampled_from(["\r\n", "\n", "\r"]), quote_all=st.booleans())
def test_every_csv_row_is_one_spec(folder, rows, newline, quote_all):
    path = folder / "fuzz.csv"
    path.write_text(csv_text(rows, newline, quote_all), encoding="utf-8", newline="")
    specs = specs_of(path)
    assert len(specs) == len(rows)
    assert_well_formed(specs)
    for spec, row in zip(specs, rows):
        raw_id = (row.get("id") or "").strip()
        if spec.error is None:
            assert spec.key == raw_id
        if not raw_id:
            assert spec.external_id is None and spec.key == f"#row {spec.row}"


@FUZZ
@given(rows=st.lists(st.dictionaries(st.sampled_from(FIELDS), JSON_VALUE, max_size=6) | JSON_VALUE, max_size=6),
       ascii_only=st.booleans())
def test_every_jsonl_line_is_one_spec(folder, rows, ascii_only):
    path = folder / "fuzz.jsonl"
    lines = [json.dumps(row, ensure_ascii=ascii_only, allow_nan=True) for row in rows]
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass"))  # raw surrogates: not UTF-8
    try:
        specs = specs_of(path)
    except ManifestError as exc:
        assert str(exc).startswith(f"{path}: not UTF-8 text") and not ascii_only
        return
    assert len(specs) == len(rows)
    assert_well_formed(specs)
    for spec, row in zip(specs, rows):
        if not isinstance(row, dict):  # NaN and Infinity are not JSON (Python writes them)
            assert spec.error.startswith(("not a JSON object", "not valid JSON"))


@FUZZ
@given(data=st.binary(max_size=300) | st.text(CHARS, max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
       suffix=st.sampled_from([".csv", ".jsonl"]))
def test_any_bytes_are_rows_or_one_clear_error(folder, data, suffix):
    path = folder / f"any{suffix}"
    path.write_bytes(data)
    try:
        specs = specs_of(path)
    except ManifestError as exc:
        message = str(exc)
        assert message.startswith(f"{path}: ") and message.isprintable()
        return
    if suffix == ".jsonl":
        text = data.decode("utf-8-sig")
        newline = "\n" if "\n" in text or "\r" not in text else "\r"
        assert len(specs) == sum(1 for line in text.split(newline) if line.strip())
    assert_well_formed(specs)


WAV_FMT = st.builds(
    lambda tag, channels, rate, width, extra: b"fmt " + struct.pack(
        "<IHHIIHH", 16, tag, channels, rate, rate * channels * width, channels * width, 8 * width) + extra,
    st.sampled_from([1, 3, 0xFFFE, 0]), st.integers(0, 3), st.sampled_from([0, 8000, 16000, 44100]),
    st.integers(0, 4), st.binary(max_size=8))


@FUZZ
@given(fmt=WAV_FMT, junk=st.binary(max_size=12), size=st.integers(0, 2**32 - 1), data=st.binary(max_size=64),
       services=st.sampled_from([["soe"], ["shumei"]]))
def test_any_wav_header_is_read_or_refused_with_a_reason(folder, fmt, junk, size, data, services):
    """The wave module parses what a caller sends: a crafted header is a reason, never an error."""
    body = b"WAVE" + junk + fmt + b"data" + struct.pack("<I", size) + data
    path = folder / "crafted.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    reason = probe.check(path, services)
    assert reason is None or reason.isprintable()


_batches = itertools.count()


HOSTILE = st.sampled_from(["a\x00", "\ud800", "x\udfff", "#row 1", "   ", "nan", "i" * 257, "r" * 140_000,
                           10**400, 1e308 * 10, True, ["\ud800"], ["soe", 1], {"a": None}])
DB_VALUE = st.one_of(HOSTILE, st.sampled_from(NAMES), JSON_VALUE)


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.dictionaries(st.sampled_from(FIELDS), DB_VALUE, max_size=5), min_size=1, max_size=8))
def test_fuzzed_rows_are_recorded_whole(database_url, folder, rows):
    path = folder / "db.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows), encoding="utf-8")  # ASCII: escapes only
    batch = f"fuzz-{next(_batches)}"
    result = ingest(path, batch=batch)
    jobs = assert_consistent(batch)
    assert len(jobs) == len(rows) == result.accepted + result.rejected
