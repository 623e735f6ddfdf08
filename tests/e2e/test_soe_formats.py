"""SOE end to end through real processes: formats SOE cannot take, its limits, keyword sessions and
async mode (manifest → ingest → worker (and beat) → sandbox → report).

The audio is made here with PyAV. A converted file's expected scores are ``sandbox.soe.score`` of
the tests' own decode of it (:func:`tests.audio_files.reference_pcm`): what SOE must have received,
which the sandbox's ``audio_sha256`` of the session confirms byte for byte.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from sandbox.soe import keyword_scores, score
from tests.audio_files import reference_pcm, sha256, write_tone, write_wav
from tests.pipeline import CHUNK_BYTES

pytestmark = [pytest.mark.e2e]


def write_manifest(folder: Path, rows: list[dict]) -> Path:
    manifest = folder / f"{folder.name}.csv"
    fields = ["id", "audio", "ref_text", "eval_mode", "soe_mode", "keywords"]
    with manifest.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fields)
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def sessions(pipeline) -> dict[str, dict]:
    return pipeline.sandbox("stats")["services"]["soe"]["sessions"]


def assert_scores(row: dict, expected: dict) -> None:
    soe = row["soe"]
    assert row["status"] == "done", row
    assert (soe["suggested_score"], soe["pron_accuracy"], soe["pron_fluency"], soe["pron_completion"]) == (
        expected["SuggestedScore"], expected["PronAccuracy"], expected["PronFluency"], expected["PronCompletion"]), row


def test_m4a_ogg_mp3_and_stereo_44k_wav_are_all_scored(pipeline, tmp_path):
    folder = tmp_path / "phones"
    folder.mkdir()
    made = [write_tone(folder / "pupil-1.m4a", 2.0), write_tone(folder / "pupil-2.ogg", 1.5, seed=1),
            write_tone(folder / "pupil-3.mp3", 1.0, seed=2), write_wav(folder / "pupil-4.wav", 2.5, seed=3),
            write_tone(folder / "pupil-5.aac", 1.0, seed=4), write_tone(folder / "pupil-6.wma", 1.0, seed=5),
            write_tone(folder / "pupil-7.amr", 1.0, seed=6)]
    manifest = write_manifest(folder, [{"id": p.stem, "audio": p.name, "ref_text": "good morning"} for p in made])
    pipeline.start_worker("-c", "4")

    ingested = pipeline.cli("ingest", str(manifest))
    assert "7 accepted, 0 rejected" in ingested.stdout
    pipeline.wait("phones", 120)

    report = {row["id"]: row for row in pipeline.report("phones")}
    seen = sessions(pipeline)
    for path in made:
        row, pcm = report[path.stem], reference_pcm(path)
        assert_scores(row, score(pcm, "good morning", 1, 1.0))
        assert row["soe"]["chunks"] == math.ceil(len(pcm) / CHUNK_BYTES)
        sent = seen[row["soe"]["session_id"]]
        assert (sent["bytes"], sent["audio_sha256"]) == (len(pcm), sha256(pcm)), path.name
    assert set(pipeline.sandbox("stats")["accepted"]["soe"].values()) == {1}


def test_audio_longer_than_its_mode_is_rejected_at_ingest_with_the_reason(pipeline, tmp_path):
    folder = tmp_path / "long"
    folder.mkdir()
    write_tone(folder / "talk.m4a", 360, channels=1, rate=22050)  # a 6-minute paragraph
    write_wav(folder / "reading.wav", 120, rate=16000, channels=1)  # a 2-minute sentence
    write_wav(folder / "fine.wav", 50, rate=44100, channels=2)  # within a sentence's 60 s
    manifest = write_manifest(folder, [
        {"id": "talk", "audio": "talk.m4a", "ref_text": "a talk", "eval_mode": "paragraph"},
        {"id": "reading", "audio": "reading.wav", "ref_text": "a reading", "eval_mode": "sentence"},
        {"id": "fine", "audio": "fine.wav", "ref_text": "fine", "eval_mode": "sentence"},
    ])
    pipeline.start_worker("-c", "2")

    ingested = pipeline.cli("ingest", str(manifest))
    pipeline.wait("long", 120)

    assert "1 accepted, 2 rejected" in ingested.stdout
    rejected = [line for line in ingested.stderr.splitlines() if line.startswith("rejected ")]
    assert len(rejected) == 2 and all("Traceback" not in line for line in rejected)
    report = {row["id"]: row for row in pipeline.report("long")}
    assert report["talk"]["status"] == report["reading"]["status"] == "rejected"
    assert report["talk"]["error"] == ("audio is 6 min 0.0 s long; SOE's paragraph mode takes at most 300 s "
                                       "(VOXQUEUE_SOE_MAX_SECONDS_PARAGRAPH)")
    assert report["reading"]["error"] == ("audio is 2 min 0.0 s long; SOE's sentence mode takes at most 60 s "
                                          "(VOXQUEUE_SOE_MAX_SECONDS_SENTENCE)")
    assert_scores(report["fine"], score(reference_pcm(folder / "fine.wav"), "fine", 1, 1.0))
    assert list(pipeline.sandbox("stats")["accepted"]["soe"]) == [report["fine"]["soe"]["session_id"]]


def test_a_file_needing_more_than_3000_chunks_at_the_default_size_goes_in_3000(pipeline, tmp_path):
    """1,000 s of 16 kHz audio is 32 MB: 3,126 chunks of the default 10,240 bytes, and SeqId stops
    at 3,000 (the sandbox refuses SeqId 3001). So long a file is over SOE's 300 s, so the limit
    of free mode is raised here, in voxqueue and in the sandbox."""
    folder = tmp_path / "lecture"
    folder.mkdir()
    path = write_wav(folder / "lecture.wav", 1000, rate=16000, channels=1)
    assert math.ceil(path.stat().st_size / 10240) > 3000
    manifest = write_manifest(folder, [{"id": "lecture", "audio": "lecture.wav", "ref_text": "a lecture",
                                        "eval_mode": "free"}])
    del pipeline.env["VOXQUEUE_SOE_CHUNK_BYTES"]  # the default
    pipeline.env["VOXQUEUE_SOE_MAX_SECONDS_FREE"] = "1200"
    pipeline.env["VOXQUEUE_SOE_QPS"] = "2000"  # one file's 3,000 calls, not 60 s at the default 50/s
    pipeline.sandbox("config", {"soe_audio_limits_s": {"0": 60, "1": 60, "2": 300, "3": 1200}})
    pipeline.start_worker("-c", "2")

    pipeline.cli("ingest", str(manifest))
    pipeline.wait("lecture", 240)

    (row,) = pipeline.report("lecture")
    assert_scores(row, score(path.read_bytes(), "a lecture", 3, 1.0))
    assert row["soe"]["chunks"] == 3000
    sent = sessions(pipeline)[row["soe"]["session_id"]]
    assert (sent["chunks"], sent["audio_sha256"]) == (3000, sha256(path.read_bytes()))


def test_keyword_sessions_and_async_mode_are_scored(pipeline, tmp_path):
    """Keywords through KeywordEvaluate; async sessions answered with no score, then polled by the
    beat with IsQuery until Finished (the sandbox takes 3 s to evaluate them)."""
    folder = tmp_path / "modes"
    folder.mkdir()
    write_wav(folder / "words.wav", 1.0, rate=16000, channels=1, seed=1)
    write_tone(folder / "later.m4a", 1.5, seed=2)
    write_wav(folder / "later.wav", 0.8, rate=16000, channels=1, seed=3)
    manifest = write_manifest(folder, [
        {"id": "keywords", "audio": "words.wav", "keywords": "red|green apple"},
        {"id": "async-m4a", "audio": "later.m4a", "ref_text": "see you later", "soe_mode": "async"},
        {"id": "async-wav", "audio": "later.wav", "ref_text": "see you", "soe_mode": "async"},
    ])
    # Long enough that the first poll (due 1 s after the last chunk) finds it still evaluating,
    # even on a loaded machine (3 s was not, once in CI).
    pipeline.sandbox("config", {"result_delay_s": 8})
    pipeline.start_worker("-c", "2")
    pipeline.start_beat()

    pipeline.cli("ingest", str(manifest))
    pipeline.wait("modes", 120)

    report = {row["id"]: row for row in pipeline.report("modes")}
    seen = sessions(pipeline)
    words = (folder / "words.wav").read_bytes()
    expected = keyword_scores(words, [{"RefText": k, "EvalMode": 1, "ScoreCoeff": 1.0} for k in ("red", "green apple")])
    assert report["keywords"]["status"] == "done"
    assert report["keywords"]["soe"]["suggested_score"] == round(sum(k["SuggestedScore"] for k in expected) / 2, 4)
    assert seen[report["keywords"]["soe"]["session_id"]]["kind"] == "keyword"
    for key, audio, text in (("async-m4a", reference_pcm(folder / "later.m4a"), "see you later"),
                             ("async-wav", (folder / "later.wav").read_bytes(), "see you")):
        assert_scores(report[key], score(audio, text, 1, 1.0))
        sent = seen[report[key]["soe"]["session_id"]]
        assert sent["async"] and sent["queries"] >= 2, sent  # asked while evaluating, then Finished
    beat = (pipeline.logs / "beat.log").read_text(errors="replace")
    assert "voxqueue.poll.soe" in beat
