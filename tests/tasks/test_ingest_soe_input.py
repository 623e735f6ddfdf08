"""Ingest for SOE: formats it cannot take are accepted when a decoder reads them, refused with
the reason when none does, and audio or reference text over the mode's limit is refused before
anything is sent (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest

from config.settings import reset_settings
from tasks.ingest import ingest
from tests.audio_files import write_tone, write_wav
from tests.tasks.test_ingest import jobs


def run(folder: Path, rows: list[dict], batch: str = "b") -> dict[str, str | None]:
    """Ingest ``rows``; each id with its rejection reason (None: accepted)."""
    manifest = folder / f"{batch}.jsonl"
    manifest.write_text("".join(json.dumps({"ref_text": "red", **r}) + "\n" for r in rows), encoding="utf-8")
    ingest(manifest)
    return {job.key: job.error for job in jobs(batch)}


def write_float_wav(path: Path, seconds: float) -> Path:
    """A 32-bit float WAV at 48 kHz: the wave module does not read it, FFmpeg does."""
    with av.open(str(path), "w", format="wav") as out:
        stream = out.add_stream("pcm_f32le", rate=48000, layout="mono")
        frame = av.AudioFrame(format="flt", layout="mono", samples=int(48000 * seconds))
        frame.planes[0].update(b"\x00\x00\x00\x3e" * frame.samples)  # 0.125, a constant
        frame.sample_rate, frame.pts = 48000, 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def test_every_format_a_decoder_reads_is_accepted_for_soe(database_url, tmp_path):
    names = []
    for suffix in (".m4a", ".aac", ".ogg", ".mp3", ".wma", ".amr"):
        names.append(write_tone(tmp_path / f"tone{suffix}", 1.0).name)
    names.append(write_wav(tmp_path / "cd.wav", 1.0, rate=44100, channels=2).name)
    names.append(write_wav(tmp_path / "phone.wav", 1.0, rate=8000, channels=1, width=1).name)
    names.append(write_wav(tmp_path / "studio.wav", 1.0, rate=96000, channels=2, width=3).name)
    names.append(write_float_wav(tmp_path / "float.wav", 1.0).name)
    reasons = run(tmp_path, [{"id": name, "audio": name} for name in names])
    assert reasons == dict.fromkeys(names)


@pytest.mark.parametrize(("name", "data", "fragment"), [
    ("noise.m4a", b"\x00\x00\x00\x20ftypM4A " + b"\x00garbage" * 500,
     "not a readable M4A (MP4) file: no decoder can read it (Invalid data found when processing input)"),
    ("noise.ogg", b"OggS" + bytes(range(256)) * 16, "not a readable Ogg file: no decoder can read it"),
    ("noise.wav", b"RIFF\x24\x10\x00\x00WAVEfmt \x10\x00\x00\x00\x55\x55" + b"\x01" * 4000,
     "not a readable WAV file: no decoder can read it (unknown format: 21845;"),
])
def test_what_no_decoder_reads_is_rejected_with_the_reason(database_url, tmp_path, name, data, fragment):
    (tmp_path / name).write_bytes(data)
    reasons = run(tmp_path, [{"id": "x", "audio": name}, {"id": "moderated", "audio": name, "services": "shumei"}])
    assert fragment in reasons["x"] and str(tmp_path / name) in reasons["x"]
    assert reasons["moderated"] is None  # only SOE's input is probed: moderation vendors decode themselves


@pytest.mark.parametrize(("mode", "seconds", "accepted"), [
    ("word", 60, True), ("word", 61, False), ("sentence", 61, False),
    ("paragraph", 299, True), ("paragraph", 301, False), ("free", 301, False),
])
def test_audio_longer_than_the_mode_takes_is_rejected(database_url, tmp_path, mode, seconds, accepted):
    write_wav(tmp_path / "native.wav", seconds, rate=16000, channels=1)  # header only: no decoding
    (tmp_path / "raw.pcm").write_bytes(b"\x00\x01" * 16000 * seconds)
    reasons = run(tmp_path, [{"id": f"{mode}-{name}", "audio": name, "eval_mode": mode}
                             for name in ("native.wav", "raw.pcm")])
    for error in reasons.values():
        if accepted:
            assert error is None
        else:
            assert f"SOE's {mode} mode takes at most" in error and f"VOXQUEUE_SOE_MAX_SECONDS_{mode.upper()}" in error


def test_a_six_minute_paragraph_and_a_two_minute_sentence_are_rejected_by_their_header(database_url, tmp_path):
    write_tone(tmp_path / "talk.m4a", 360, channels=1)  # AAC: PyAV reads its length from the container
    write_wav(tmp_path / "reading.wav", 120, rate=22050, channels=2)
    reasons = run(tmp_path, [{"id": "talk", "audio": "talk.m4a", "eval_mode": "paragraph"},
                             {"id": "reading", "audio": "reading.wav", "eval_mode": "sentence"}])
    assert reasons["talk"] == ("audio is 6 min 0.0 s long; SOE's paragraph mode takes at most 300 s "
                               "(VOXQUEUE_SOE_MAX_SECONDS_PARAGRAPH)")
    assert reasons["reading"].startswith("audio is 2 min 0.0 s long; SOE's sentence mode takes at most 60 s")


def test_the_limits_are_settings(database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("VOXQUEUE_SOE_MAX_SECONDS_SENTENCE", "0.5")
    monkeypatch.setenv("VOXQUEUE_SOE_MAX_WORDS_SENTENCE", "2")
    reset_settings()
    write_wav(tmp_path / "a.wav", 1.0, rate=16000, channels=1)
    reasons = run(tmp_path, [{"id": "long", "audio": "a.wav", "ref_text": "hi"},
                             {"id": "wordy", "audio": "a.wav", "ref_text": "one two three", "eval_mode": "word"},
                             {"id": "words", "audio": "a.wav", "ref_text": "one two three", "eval_mode": "paragraph"}])
    assert "at most 0.5 s" in reasons["long"]
    assert reasons["wordy"] is None and reasons["words"] is None  # word mode: no word limit; paragraph: 120


@pytest.mark.parametrize(("mode", "count", "accepted"), [
    ("sentence", 30, True), ("sentence", 31, False), ("paragraph", 120, True), ("paragraph", 121, False),
    ("word", 200, True), ("free", 200, True),
])
def test_reference_text_over_the_modes_words_is_rejected(database_url, tmp_path, mode, count, accepted):
    write_wav(tmp_path / "a.wav", 0.2, rate=16000, channels=1)
    text = " ".join(["red"] * count)
    reasons = run(tmp_path, [{"id": "x", "audio": "a.wav", "ref_text": text, "eval_mode": mode}])
    if accepted:
        assert reasons["x"] is None
    else:
        assert reasons["x"] == (f"ref_text has {count} words; SOE's {mode} mode takes at most "
                                f"{30 if mode == 'sentence' else 120} (VOXQUEUE_SOE_MAX_WORDS_{mode.upper()})")


def test_chinese_text_counts_a_word_per_character_and_keywords_each_count(database_url, tmp_path):
    write_wav(tmp_path / "a.wav", 0.2, rate=16000, channels=1)
    reasons = run(tmp_path, [
        {"id": "zh-ok", "audio": "a.wav", "ref_text": "红" * 30, "lang": "zh"},
        {"id": "zh-long", "audio": "a.wav", "ref_text": "红色" * 16, "lang": "zh"},
        {"id": "keywords", "audio": "a.wav", "keywords": ["red", " ".join(["green"] * 31)]},
    ])
    assert reasons["zh-ok"] is None
    assert reasons["zh-long"].startswith("ref_text has 32 words")
    assert reasons["keywords"].startswith("keyword 2 has 31 words")


def test_async_mode_is_an_option_but_not_for_keywords(database_url, tmp_path):
    write_wav(tmp_path / "a.wav", 0.2, rate=16000, channels=1)
    reasons = run(tmp_path, [{"id": "async", "audio": "a.wav", "soe_mode": "async"},
                             {"id": "keywords", "audio": "a.wav", "soe_mode": "async", "keywords": "red"},
                             {"id": "other", "audio": "a.wav", "soe_mode": "later"}])
    assert reasons["async"] is None
    assert reasons["keywords"] == "soe_mode async cannot evaluate keywords: KeywordEvaluate has no async mode"
    assert reasons["other"] == "soe_mode must be stream, oneshot or async, not later"
    assert {j.key: j.options["soe_mode"] for j in jobs("b") if j.key == "async"} == {"async": "async"}
