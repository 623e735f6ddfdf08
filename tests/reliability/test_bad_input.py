"""Bad input mixed into a batch of good files: each bad row ends with one clear reason."""

from __future__ import annotations

import csv
import wave

import pytest

from tests.e2e.test_soe_pipeline import WORDS, check_scores
from tests.pipeline import write_speech_like_wav

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def silent_url(silent_server) -> str:
    return f"http://127.0.0.1:{silent_server}/never.wav"


@pytest.fixture
def pipeline_env(tmp_path) -> dict[str, str]:
    (tmp_path / "readings").mkdir()
    return {"VOXQUEUE_SANDBOX_MEDIA_DIR": str(tmp_path / "readings")}  # a real 404 for a missing file


def write_bad_files(folder) -> None:
    (folder / "empty.wav").write_bytes(b"")
    (folder / "text.wav").write_bytes(b"this is a text file, not audio")
    with wave.open(str(folder / "stereo.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(b"\x00\x01" * 44100)
    with wave.open(str(folder / "huge.wav"), "wb") as w:  # 61 s: longer than a sentence takes
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x01" * 16000 * 61)


EXPECTED = [  # (report id, status, a fragment of the reason), in manifest order
    ("missing", "rejected", "not found"), ("empty", "rejected", "empty"),
    ("text", "rejected", "not a readable WAV"),
    ("huge", "rejected", "SOE's sentence mode takes at most 60 s"), ("#row 9", "rejected", "no id"),
    ("pupil-001", "rejected", "duplicate id"), ("no-text", "rejected", "ref_text"),
    ("bad-url", "rejected", "malformed URL"), ("url-404", "failed", "404"),
    ("url-timeout", "failed", "could not fetch"),
]


def test_bad_rows_are_recorded_and_the_good_ones_finish(pipeline, tmp_path, silent_url):
    folder = tmp_path / "readings"
    write_bad_files(folder)
    good = []
    for i in range(6):  # the conventions of make_manifest, so check_scores knows the scores
        write_speech_like_wav(folder / f"pupil{i:03}.wav", 0.05 + (i % 10) * 0.06, seed=i)
        mode = "word" if i % 7 == 0 else "sentence"
        good.append([f"pupil-{i:03}", f"pupil{i:03}.wav", WORDS[i % len(WORDS)], mode, 1 + (i % 4)])
    bad = [
        ["missing", "nope.wav", "red"], ["empty", "empty.wav", "red"], ["text", "text.wav", "red"],
        ["stereo", "stereo.wav", "red"], ["huge", "huge.wav", "red"], ["", "pupil000.wav", "red"],
        ["pupil-001", "pupil001.wav", "red"], ["no-text", "pupil002.wav", ""],
        ["bad-url", "http://exa mple.com/a.wav", "red"],
        ["url-404", f"{pipeline.sandbox_url}/media/nothing-here.wav", "red"],
        ["url-timeout", silent_url, "red"],
    ]
    manifest = folder / "mixed.csv"
    with manifest.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "audio", "ref_text", "eval_mode", "score_coeff"])
        writer.writerows(good[:2] + [row + ["sentence", 1] for row in bad] + good[2:])
    pipeline.env |= {"VOXQUEUE_VENDOR_TIMEOUT": "2", "VOXQUEUE_SOE_MAX_ATTEMPTS": "2"}
    pipeline.start_worker("-c", "4")

    ingested = pipeline.cli("ingest", str(manifest))
    pipeline.cli("wait", "--batch", "mixed", "--timeout", "120")

    assert "batch mixed: 9 accepted, 8 rejected" in ingested.stdout  # the stereo WAV is converted
    assert len([line for line in ingested.stderr.splitlines() if line.startswith("rejected ")]) == 8
    report = pipeline.report("mixed")
    troubled = [(r["id"], r["status"], r["error"]) for r in report if r["status"] != "done"]
    print("\n" + "\n".join(f"{key}: {status}: {error}" for key, status, error in troubled))
    assert [(key, status) for key, status, _ in troubled] == [(key, status) for key, status, _ in EXPECTED]
    for (key, _, error), (_, _, fragment) in zip(troubled, EXPECTED):
        assert fragment in error, (key, error)
        assert "\n" not in error and "Traceback" not in error
    done = [r for r in report if r["status"] == "done"]
    assert [r["id"] for r in done if not r["id"].startswith("pupil-")] == ["stereo"]
    check_scores([r for r in done if r["id"] != "stereo"], folder)
