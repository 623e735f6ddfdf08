"""Hostile and careless manifests (issue 20): one bad row is one rejected job, never the batch.

Each case puts one bad row between two good ones and ingests it on SQLite and PostgreSQL:
the bad row is one ``rejected`` job whose reason names what is wrong, the good rows are
recorded with their checks, and the database is consistent afterwards.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import socket
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from models import Batch, Job
from models.db import session_scope
from tasks.ingest import ingest
from tasks.manifest import Defaults, ManifestError
from tests.tasks.manifest_checks import assert_consistent, recorded, write_wav

COLUMNS = ["id", "audio", "stream", "ref_text", "services", "score_coeff", "keywords", "user_id", "notes"]
GOOD = [{"id": "good-1", "audio": "good.wav", "ref_text": "red"},
        {"id": "good-2", "audio": "good.wav", "ref_text": "red"}]
WAV_HEADER = 44


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    write_wav(data / "good.wav")
    return data


def fifo(folder: Path) -> str:
    os.mkfifo(folder / "pipe.wav")
    return "pipe.wav"


def symlink(folder: Path, name: str, target: str | Path) -> str:
    os.symlink(target, folder / name)
    return name


def text_file(folder: Path, name: str) -> str:
    (folder / name).write_text("root:x:0:0:root:/root:/bin/bash\n" * 20)
    return name


def odd_wav_data(folder: Path) -> str:
    """A WAV whose data chunk holds 3201 bytes: its last 16-bit sample is cut."""
    raw = bytearray((write_wav(folder / "base.wav")).read_bytes()) + b"\x01"
    raw[4:8] = (len(raw) - 8).to_bytes(4, "little")
    raw[40:44] = (len(raw) - WAV_HEADER).to_bytes(4, "little")
    (folder / "odd.wav").write_bytes(bytes(raw))
    return "odd.wav"


def odd_wav_file(folder: Path) -> str:
    """Whole samples, then one stray byte: an odd file SOE cannot take in even chunks."""
    (folder / "tail.wav").write_bytes(write_wav(folder / "base.wav").read_bytes() + b"\x00")
    return "tail.wav"


def crafted_wav(folder: Path) -> str:
    """A WAV header whose chunks run past the end (the wave module raises RuntimeError)."""
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 0, 0, 0, 0, 0)
    body = b"WAVE\x00" + fmt + b"data" + struct.pack("<I", 0)
    (folder / "crafted.wav").write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return "crafted.wav"


def unix_socket(folder: Path) -> str:
    short = Path(tempfile.mkdtemp(prefix="vq", dir="/tmp"))  # sun_path holds 107 bytes
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(short / "s.wav"))  # the socket file stays after the socket is closed
    folder.joinpath(".cleanup").write_text(str(short))
    return str(short / "s.wav")


def audio(value: str | Callable[[Path], str], **extra) -> Callable[[Path], dict]:
    return lambda folder: {"id": "bad", "audio": value(folder) if callable(value) else value,
                           "ref_text": "red"} | extra


def row(**fields) -> Callable[[Path], dict]:
    return lambda folder: {"id": "bad", "audio": "good.wav", "ref_text": "red"} | fields


def line(text: str) -> Callable[[Path], str]:
    return lambda folder: text


CSV_CASES = [
    ("ipv6-audio", audio("http://[::1/a.wav"), "malformed URL (Invalid IPv6 URL)"),
    ("ipv6-stream", lambda f: {"id": "bad", "stream": "rtmp://[zz/live", "services": "gme"}, "malformed URL"),
    ("bracketed-name", audio("http://[zz]/a.wav"), "malformed URL"),
    ("port-out-of-range", audio("http://example.com:99999/a.wav"), "Port out of range"),
    ("port-not-a-number", audio("http://example.com:x/a.wav"), "malformed URL"),
    ("url-without-host", audio("http:///a.wav"), "malformed URL (no host)"),
    ("space-in-url", audio("http://exa mple.com/a.wav"), "malformed URL"),
    ("nul-in-path", audio("good\x00.wav"), "audio contains a NUL character"),
    ("nul-in-id", row(id="b\x00d"), "id contains a NUL character"),
    ("nul-in-ref-text", row(ref_text="r\x00ed"), "ref_text contains a NUL character"),
    ("nul-in-keywords", row(keywords="a|b\x00"), "keywords contains a NUL character"),
    ("nul-in-stream", lambda f: {"id": "bad", "stream": "rtmp://h/\x00", "services": "gme"}, "stream contains a NUL"),
    ("name-over-255-bytes", audio("x" * 256 + ".wav"), "File name too long"),
    ("name-over-255-bytes-utf8", audio("語" * 90 + ".wav"), "File name too long"),
    ("path-over-4096-bytes", audio("/".join(["d" * 200] * 25) + "/a.wav"), "File name too long"),
    ("ref-text-over-131072", row(ref_text="r" * 131_073), "ref_text is 131,073 characters; at most 131,072"),
    ("id-over-131072", row(id="i" * 131_073), "id is 131,073 characters"),
    ("audio-over-131072", audio("a" * 131_073), "audio is 131,073 characters"),
    ("id-over-256", row(id="i" * 257), "id is 257 characters; at most 256"),
    ("id-of-spaces", row(id="   "), "row has no id"),
    ("id-of-the-no-id-form", row(id="#row 3"), "the form given to rows without an id"),
    ("score-nan", row(score_coeff="nan"), "score_coeff must be a finite number"),
    ("score-NaN", row(score_coeff="NaN"), "score_coeff must be a finite number"),
    ("score-inf", row(score_coeff="inf"), "score_coeff must be a finite number"),
    ("score-minus-infinity", row(score_coeff="-Infinity"), "score_coeff must be a finite number"),
    ("score-1e999", row(score_coeff="1e999"), "score_coeff must be a finite number"),
    ("score-text", row(score_coeff="high"), "score_coeff is not a number"),
    ("score-out-of-range", row(score_coeff="4.5"), "between 1.0 and 4.0"),
    ("dev-zero", audio("/dev/zero"), "is a character device, not a regular file"),
    ("dev-urandom", audio("/dev/urandom"), "is a character device, not a regular file"),
    ("dev-null", audio("/dev/null"), "is a character device, not a regular file"),
    ("fifo", audio(fifo), "is a FIFO (named pipe), not a regular file"),
    ("symlink-to-fifo", audio(lambda f: symlink(f, "link.wav", f / fifo(f))), "is a FIFO (named pipe)"),
    ("symlink-to-dev-zero", audio(lambda f: symlink(f, "zero.wav", "/dev/zero")), "character device"),
    ("directory", audio(lambda f: (f / "dir.wav").mkdir() or "dir.wav"), "is a directory, not a regular file"),
    ("socket", audio(unix_socket), "is a socket, not a regular file"),
    ("wav-symlink-to-text", audio(lambda f: symlink(f, "passwd.wav", f / text_file(f, "passwd"))),
     "not a readable WAV file (it looks like text)"),
    ("text-named-wav", audio(lambda f: text_file(f, "notes.wav")), "not a readable WAV file (it looks like text)"),
    ("text-without-suffix", audio(lambda f: text_file(f, "passwd")), "not a recognised audio file"),
    ("symlink-loop", audio(lambda f: symlink(f, "a.wav", f / symlink(f, "b.wav", f / "a.wav"))),
     "Too many levels of symbolic links"),
    ("dangling-symlink", audio(lambda f: symlink(f, "gone.wav", f / "nothing.wav")), "a symlink to nothing"),
    ("rtmp-as-audio", audio("rtmp://live.example.com/room/1"), "rtmp is a live stream, not an audio file"),
    ("RTMP-as-audio", audio("RTMP://live.example.com/room/1"), "rtmp is a live stream"),
    ("ftp-as-audio", audio("ftp://example.com/a.wav"), "an audio URL must be http or https, not ftp"),
    ("file-url-as-audio", audio("file:///etc/passwd"), "an audio URL must be http or https, not file"),
    ("crafted-wav-header", audio(crafted_wav), "not a readable WAV file"),
    ("odd-wav-data", audio(odd_wav_data), "WAV data is 3201 bytes, not whole 2-byte frames"),
    ("odd-wav-file", audio(odd_wav_file), "an odd size: SOE takes 16-bit audio in even chunks"),
    ("odd-pcm", audio(lambda f: (f / "odd.pcm").write_bytes(b"\x01\x00" * 800 + b"\x01") and "odd.pcm"),
     "raw PCM is 1601 bytes, an odd size"),
    ("text-named-pcm", audio(lambda f: text_file(f, "notes.pcm")), "not raw PCM audio (it looks like text)"),
    ("wav-named-pcm", audio(lambda f: shutil.copy(f / "good.wav", f / "w.pcm") and "w.pcm"),
     "not raw PCM audio (it holds WAV audio)"),
    ("mp3-named-wav", audio(lambda f: (f / "m.wav").write_bytes(b"ID3\x04" + bytes(600)) and "m.wav"),
     "not a readable WAV file (it holds MP3 audio)"),
    ("text-named-mp3", audio(lambda f: text_file(f, "notes.mp3")), "not a readable MP3 file (it looks like text)"),
    ("newline-in-path", audio("go\nod.wav"), "audio file not found"),
]

JSONL_CASES = [
    ("surrogate-in-id", row(id="\ud800"), "id is not valid Unicode text: a lone surrogate U+D800"),
    ("surrogate-pair-halves-in-id", row(id="x\udc00\ud800"), "lone surrogate U+DC00"),
    ("surrogate-in-ref-text", row(ref_text="red\udfff"), "ref_text is not valid Unicode text"),
    ("surrogate-in-audio", audio("good\ud800.wav"), "audio is not valid Unicode text"),
    ("surrogate-in-keyword", row(keywords=["red", "\ud801"]), "keywords item 2 is not valid Unicode text"),
    ("surrogate-in-service", row(services=["soe\udc80"]), "services item 1 is not valid Unicode text"),
    ("surrogate-in-user-id", row(user_id="u\ud800"), "user_id is not valid Unicode text"),
    ("nul-in-json-id", row(id="a\x00"), "id contains a NUL character"),
    ("nested-100000-deep", line('{"id": "bad", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"),
     "not valid JSON: nested too deeply"),
    ("nested-ref-text", row(ref_text=json.loads("[" * 200 + "]" * 200)), "ref_text must be text, not a list"),
    ("NaN-literal", line('{"id": "bad", "audio": "good.wav", "ref_text": "red", "score_coeff": NaN}'),
     "NaN is not a JSON number"),
    ("Infinity-literal", line('{"id": "bad", "audio": "good.wav", "ref_text": "red", "score_coeff": -Infinity}'),
     "-Infinity is not a JSON number"),
    ("score-1e999-number", line('{"id": "bad", "audio": "good.wav", "ref_text": "red", "score_coeff": 1e999}'),
     "score_coeff must be a finite number"),
    ("score-huge-int", row(score_coeff=10**400), "score_coeff is not a number"),
    ("score-true", row(score_coeff=True), "score_coeff must be text or a number, not true/false"),
    ("id-object", row(id={"a": 1}), "id must be text or a whole number, not an object"),
    ("id-list", row(id=["a"]), "id must be text or a whole number, not a list"),
    ("id-true", row(id=True), "id must be text or a whole number, not true/false"),
    ("id-fraction", row(id=1.5), "id must be text or a whole number, not a number"),
    ("id-300-digits", row(id=10**299), "id is 300 characters; at most 256"),
    ("audio-number", row(audio=7), "audio must be text, not a number"),
    ("audio-list", row(audio=["good.wav"]), "audio must be text, not a list"),
    ("ref-text-object", row(ref_text={"en": "red"}), "ref_text must be text, not an object"),
    ("keyword-number", row(keywords=["red", 3]), "keywords must be strings; item 2 is a number"),
    ("keyword-list-in-list", row(keywords=[["red"]]), "keywords must be strings; item 1 is a list"),
    ("keywords-object", row(keywords={"red": 1}), "keywords must be text or a list of texts, not an object"),
    ("service-number", row(services=[1]), "services must be strings; item 1 is a number"),
    ("lang-number", row(lang=1), "lang must be text, not a number"),
    ("array-line", line("[1, 2]"), "not a JSON object (a list)"),
    ("string-line", line('"bad"'), "not a JSON object (text)"),
    ("truncated-line", line('{"id": "bad", "audio": '), "not valid JSON"),
    ("number-over-4300-digits", line('{"id": "bad", "score_coeff": ' + "9" * 5000 + "}"), "not valid JSON"),
    ("tab-in-url", audio("http://example.com/a\tb.wav"), "malformed URL (a space or control character"),
    ("newline-in-url", audio("http://example.com/a\nb.wav"), "malformed URL (a space or control character"),
]


def write_manifest(folder: Path, fmt: str, bad: dict | str) -> Path:
    rows = [GOOD[0], bad, GOOD[1]]
    path = folder / f"m.{fmt}"
    if fmt == "csv":
        with path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    else:
        lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]  # ensure_ascii: "\ud800" escapes
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def cleanup(folder: Path) -> None:
    marker = folder / ".cleanup"
    if marker.exists():
        shutil.rmtree(marker.read_text(), ignore_errors=True)


def assert_one_rejected(batch: str, fragment: str) -> Job:
    jobs = assert_consistent(batch)
    assert [j.status for j in jobs] == ["pending", "rejected", "pending"], [(j.key, j.error) for j in jobs]
    assert [j.key for j in (jobs[0], jobs[2])] == ["good-1", "good-2"]
    assert fragment in jobs[1].error, jobs[1].error
    return jobs[1]


@pytest.mark.parametrize(("fmt", "make", "fragment"),
                         [pytest.param("csv", make, fragment, id=name) for name, make, fragment in CSV_CASES]
                         + [pytest.param("jsonl", make, fragment, id=name) for name, make, fragment in JSONL_CASES])
def test_one_bad_row_is_one_rejected_job(database_url, folder, fmt, make, fragment):
    try:
        manifest = write_manifest(folder, fmt, make(folder))
        result = ingest(manifest, batch="hostile")
    finally:
        cleanup(folder)
    assert (result.accepted, result.rejected) == (2, 1)
    assert len(result.to_enqueue) == 2
    bad = assert_one_rejected("hostile", fragment)
    assert result.rejections == [(bad.key, bad.error)]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_the_same_hostile_manifest_again_adds_nothing(database_url, folder, fmt):
    make = {name: make for name, make, _ in CSV_CASES + JSONL_CASES}["nul-in-id" if fmt == "csv" else "surrogate-in-id"]
    manifest = write_manifest(folder, fmt, make(folder))
    ingest(manifest, batch="again")
    second = ingest(manifest, batch="again")
    assert (second.accepted, second.rejected, second.existing) == (0, 0, 3)
    assert len(assert_consistent("again")) == 3


def test_good_relatives_of_bad_rows_are_accepted(database_url, folder):
    shutil.copy(folder / "good.wav", folder / "real.wav")
    os.symlink(folder / "real.wav", folder / "link.wav")
    (folder / "clip.pcm").write_bytes(b"\x01\x00\xff\xff" * 400)
    rows = [
        {"id": "i" * 256, "audio": "good.wav", "ref_text": "red"},  # exactly the column's length
        {"id": 42, "audio": "good.wav", "ref_text": "red"},
        {"id": "upper", "audio": "HTTP://example.com/a.wav", "ref_text": "red"},
        {"id": "mixed", "audio": "Https://example.com/a.wav", "ref_text": "red"},
        {"id": "link", "audio": "link.wav", "ref_text": "red"},
        {"id": "pcm", "audio": "clip.pcm", "ref_text": "red"},
        {"id": "sep", "audio": "good.wav", "ref_text": "red\u2028green\u2029blue\x85"},
        {"id": "notes", "audio": "good.wav", "ref_text": "red", "notes": "n" * 200_000 + "\x00\ud800"},
        {"id": "words", "audio": "good.wav", "keywords": ["red", " green "], "score_coeff": 4},
        {"id": "  padded  ", "audio": "good.wav", "ref_text": "red"},
        {"id": "#row 3 ", "audio": "good.wav", "ref_text": "red"},  # stripped: "#row 3" is refused ...
        {"id": "#row 03", "audio": "good.wav", "ref_text": "red"},  # ... but this is not that form
    ]
    path = folder / "ok.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")  # "\ud800" as an escape
    ingest(path, batch="relatives")
    jobs = {j.key: j for j in assert_consistent("relatives")}
    assert jobs["#row 11"].error.startswith("id '#row 3' has the form")
    accepted = {key for key, job in jobs.items() if job.status == "pending"}
    assert accepted == {"i" * 256, "42", "upper", "mixed", "link", "pcm", "sep", "notes", "words", "padded",
                        "#row 03"}
    assert jobs["upper"].audio == "http://example.com/a.wav" and jobs["mixed"].audio == "https://example.com/a.wav"
    assert jobs["link"].audio.endswith("link.wav")  # the name as given: its suffix says the format
    assert jobs["sep"].options["ref_text"] == "red\u2028green\u2029blue"
    assert jobs["words"].options["keywords"] == ["red", "green"]


@pytest.mark.parametrize("newline", ["\r", "\r\n", "\n"])
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_every_line_ending_reads_every_row(database_url, folder, fmt, newline):
    rows = [{"id": f"r{i}", "audio": "good.wav", "ref_text": f"line {i}"} for i in range(5)]
    if fmt == "csv":
        text = newline.join(["id,audio,ref_text"] + [f"{r['id']},{r['audio']},{r['ref_text']}" for r in rows])
        text += newline + 'r5,good.wav,"two' + newline + 'lines"' + newline + newline + ",good.wav,red" + newline
        keys = [r["id"] for r in rows] + ["r5", "#row 10"]  # the row without an id is on line 10
    else:
        text = newline.join(json.dumps(r) for r in rows) + newline + newline + '{"audio": "good.wav", "ref_text": "red"}' + newline
        keys = [r["id"] for r in rows] + ["#row 7"]
    (folder / f"m.{fmt}").write_bytes(text.encode())
    result = ingest(folder / f"m.{fmt}", batch="endings")
    assert (result.accepted, result.rejected) == (len(keys) - 1, 1)
    jobs = assert_consistent("endings")
    assert [j.key for j in jobs] == keys and jobs[-1].error == "row has no id"
    if fmt == "csv":
        assert jobs[-2].options["ref_text"] == f"two{newline}lines"


def test_jsonl_lines_end_at_newline_only(database_url, folder):
    rows = [{"id": f"r{i}", "audio": "good.wav", "ref_text": f"a\u2028b\u2029c\x85d\x0be\x0cf {i}"}
            for i in range(3)]
    (folder / "m.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    result = ingest(folder / "m.jsonl", batch="separators")
    assert (result.accepted, result.rejected) == (3, 0)
    assert [j.options["ref_text"] for j in assert_consistent("separators")] == [r["ref_text"] for r in rows]


def test_rows_without_an_id_never_collide_with_ids(database_url, folder):
    lines = ["id,audio,ref_text", ",good.wav,red", "#row 2,good.wav,red", "#row 4,good.wav,red", " ,good.wav,red",
             "#row 2,good.wav,red", "#row 3x,good.wav,red"]
    (folder / "m.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    first = ingest(folder / "m.csv", batch="keys")
    again = ingest(folder / "m.csv", batch="keys")
    jobs = assert_consistent("keys")
    assert [(j.key, j.external_id, j.status) for j in jobs] == [
        ("#row 2", None, "rejected"), ("#row 3", "#row 2", "rejected"), ("#row 4", "#row 4", "rejected"),
        ("#row 5", None, "rejected"), ("#row 6", "#row 2", "rejected"), ("#row 3x", "#row 3x", "pending"),
    ]
    assert jobs[0].error == "row has no id" and jobs[3].error == "row has no id"
    assert "the form given to rows without an id" in jobs[1].error
    assert (first.accepted, first.rejected) == (1, 5) and (again.existing, again.rejected) == (6, 0)


def test_folder_mode_rejects_each_bad_file_by_name(database_url, tmp_path):
    folder = tmp_path / "readings"
    folder.mkdir()
    for name in ("a", "b", "c"):
        write_wav(folder / f"{name}.wav")
    (folder / "a.txt").write_text("red", encoding="utf-8")
    (folder / "b.txt").write_bytes("caf\u00e9 cr\u00e8me".encode("latin-1"))  # Latin-1, not UTF-8
    os.mkfifo(folder / "c.txt")  # a FIFO beside c.wav: never read
    os.mkfifo(folder / "d.wav")
    (folder / "d.txt").write_text("red", encoding="utf-8")
    write_wav(Path(os.fsdecode(os.fsencode(folder) + b"/\xff.wav")))  # a name that is not UTF-8
    (folder / "sub").mkdir()
    write_wav(folder / "sub" / "e.wav")
    (folder / "sub" / "e.txt").write_text("  green \n", encoding="utf-8")
    result = ingest(folder, batch="folder", defaults=Defaults(services=["soe"]))
    jobs = {j.key: j for j in assert_consistent("folder")}
    assert (result.accepted, result.rejected) == (2, 4)
    assert jobs["a.wav"].status == "pending" and jobs["sub/e.wav"].options["ref_text"] == "green"
    assert jobs["b.wav"].error == "reference text file b.txt is not UTF-8 text (byte 3)"
    assert jobs["c.wav"].error == "soe needs ref_text (or keywords)"
    assert "is a FIFO (named pipe), not a regular file" in jobs["d.wav"].error
    (unnamed,) = [j for j in jobs.values() if j.key.startswith("#row")]
    assert unnamed.error == "file name is not valid UTF-8 text: \\udcff.wav" and unnamed.external_id == "\\udcff.wav"


def test_network_manifests_take_no_local_paths(database_url, folder):
    rows = [{"id": "url", "audio": "https://example.com/a.wav", "ref_text": "red"},
            {"id": "relative", "audio": "good.wav", "ref_text": "red"},
            {"id": "absolute", "audio": str(folder / "good.wav"), "ref_text": "red"},
            {"id": "dev", "audio": "/dev/zero", "ref_text": "red"},
            {"id": "file-url", "audio": "file:///etc/passwd", "ref_text": "red"}]
    (folder / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    result = ingest(folder / "m.jsonl", batch="api", defaults=Defaults(local_paths=False))
    jobs = {j.key: j for j in assert_consistent("api")}
    assert (result.accepted, result.rejected) == (1, 4) and jobs["url"].status == "pending"
    for key in ("relative", "absolute", "dev"):
        assert jobs[key].error.startswith("local paths are not accepted here, only http(s) URLs and uploads")
    assert "must be http or https, not file" in jobs["file-url"].error
    result = ingest(folder / "m.jsonl", batch="local")  # the same manifest, a person's own
    assert (result.accepted, result.rejected) == (3, 2)


@pytest.mark.parametrize(("batch", "ref_text", "message"), [
    ("b" * 201, None, "the batch name is 201 characters; at most 200"),
    ("batch\udcff", None, "the batch name is not valid Unicode text"),
    ("   ", None, "the batch name is empty"),
    ("ok", "red\udcff", "--ref-text is not valid Unicode text"),
])
def test_what_every_row_carries_is_checked_before_writing(database_url, folder, batch, ref_text, message):
    (folder / "m.csv").write_text("id,audio\nr1,good.wav\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=re.escape(message)):
        ingest(folder / "m.csv", batch=batch, defaults=Defaults(ref_text=ref_text))
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Batch)) == 0
        assert session.scalar(select(func.count()).select_from(Job)) == 0


def test_a_batch_name_of_200_characters_is_taken(database_url, folder):
    (folder / "m.csv").write_text("id,audio,ref_text\nr1,good.wav,red\n", encoding="utf-8")
    assert ingest(folder / "m.csv", batch="b" * 200).accepted == 1
    assert [j.key for j in recorded("b" * 200)] == ["r1"]


def put(folder: Path, name: str, data: bytes) -> Path:
    (folder / name).write_bytes(data)
    return folder / name


def write_fifo_manifest(folder: Path) -> Path:
    os.mkfifo(folder / "pipe.csv")
    return folder / "pipe.csv"


def write_device_link(folder: Path) -> Path:
    os.symlink("/dev/zero", folder / "zero.jsonl")
    return folder / "zero.jsonl"


@pytest.mark.parametrize(("make", "message"), [
    (write_fifo_manifest, "pipe.csv: not a regular file but a FIFO (named pipe)"),
    (write_device_link, "zero.jsonl: not a regular file but a character device"),
    (lambda f: put(f, "u16.csv", "id,audio\n".encode("utf-16")), "u16.csv: not UTF-8 text (byte 0)"),
    (lambda f: put(f, "empty.csv", b""), "empty.csv: the CSV manifest needs a header row with an 'id' column"),
    (lambda f: put(f, "blank.csv", b"\r\n\n\r"), "blank.csv: the CSV manifest needs a header row"),
    (lambda f: put(f, "noid.csv", b"name,audio\nx,good.wav\n"), "noid.csv: the CSV manifest needs a header row"),
    (lambda f: put(f, "m.tsv", b"id\taudio\n"), "m.tsv: a manifest must be .csv or .jsonl, not .tsv"),
    (lambda f: f / "missing.csv", "no such manifest or directory"),
    (lambda f: f / ("x" * 300 + ".csv"), "cannot be read (File name too long)"),
])
def test_unreadable_sources_are_one_clear_error_naming_the_file(database_url, folder, make, message):
    with pytest.raises(ManifestError, match=re.escape(message)):
        ingest(make(folder), batch="whole")
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Batch)) == 0


def test_blank_lines_before_the_header_are_skipped(database_url, folder):
    (folder / "m.csv").write_bytes(b"\n\r\nid,audio,ref_text\r\nr1,good.wav,red\r\n")
    assert ingest(folder / "m.csv", batch="blank").accepted == 1
