"""The SOE task in this process against the sandbox over a real socket, on both databases:
formats SOE cannot take are decoded and scored on what was sent, lengths are enforced before
anything is sent, a result lost after the final chunk is asked for with IsQuery (KeywordEvaluate
for a keyword session) within the result window and a new session after it, and async mode.

Expected scores are ``sandbox.soe.score`` of the bytes that must reach SOE: the file itself for
a 16 kHz mono WAV, the tests' own PyAV decode (:func:`tests.audio_files.reference_pcm`) otherwise.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests
from sqlalchemy import update

from config.settings import get_settings, reset_settings
from models import Check
from models.db import session_scope, transaction
from sandbox.core import SandboxConfig
from sandbox.server import SandboxThread
from sandbox.soe import keyword_scores, score
from tasks import outcome, poll, soe
from tasks.ingest import ingest
from tests.audio_files import reference_pcm, sha256, write_tone, write_wav
from vendors.soe import SoeParams

CHUNK = 4096


@dataclass
class Env:
    sandbox: SandboxThread
    config: SandboxConfig
    folder: Path

    def session(self, session_id: str) -> dict:
        return self.sandbox.stats()["services"]["soe"]["sessions"][session_id]

    def soe_requests(self) -> int:
        return sum(n for key, n in self.sandbox.stats()["requests"].items() if key.startswith("soe"))


@pytest.fixture
def env(database_url, redis_url, tmp_path, monkeypatch) -> Iterator[Env]:
    secret_id, secret_key = "AKID" + secrets.token_hex(8), secrets.token_hex(16)
    folder = tmp_path / "audio"
    folder.mkdir()
    config = SandboxConfig(tencent_secret_id=secret_id, tencent_secret_key=secret_key, seed=1,
                           media_dir=str(folder))
    with SandboxThread(config) as sandbox:
        for name, value in {"TENCENT_SECRET_ID": secret_id, "TENCENT_SECRET_KEY": secret_key,
                            "SOE_ENDPOINT": sandbox.url, "SOE_CHUNK_BYTES": str(CHUNK)}.items():
            monkeypatch.setenv(f"VOXQUEUE_{name}", value)
        reset_settings()
        yield Env(sandbox, config, folder)


def recorded(env: Env, rows: list[dict]) -> list[int]:
    """Ingest ``rows`` (nothing enqueued: the test calls the task); the check ids in row order."""
    manifest = env.folder / "rows.jsonl"
    manifest.write_text("".join(json.dumps({"ref_text": "red", **row}) + "\n" for row in rows), encoding="utf-8")
    result = ingest(manifest, batch=secrets.token_hex(4))
    assert result.rejected == 0, result.rejections
    return [check_id for check_id, _ in result.to_enqueue]


def check(check_id: int) -> Check:
    with session_scope() as session:
        found = session.get(Check, check_id)
        session.expunge(found)
        return found


def set_check(check_id: int, **values) -> None:
    with transaction() as conn:
        conn.execute(update(Check.__table__).where(Check.__table__.c.id == check_id).values(**values))


def assert_scored(row: Check, audio: bytes, ref_text: str = "red", mode: int = 1) -> None:
    expected = score(audio, ref_text, mode, 1.0)
    assert row.status == "done", (row.error_reason, row.error)
    assert (row.suggested_score, row.pron_accuracy, row.pron_fluency, row.pron_completion) == (
        expected["SuggestedScore"], expected["PronAccuracy"], expected["PronFluency"], expected["PronCompletion"])


# -- formats ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["phone.m4a", "voice.ogg", "song.mp3", "cd.wav", "song.aac", "old.wma"])
def test_audio_soe_cannot_take_is_decoded_and_scored_on_what_was_sent(env, name):
    path = env.folder / name
    if name.endswith(".wav"):
        write_wav(path, 1.2, rate=44100, channels=2)
    else:
        write_tone(path, 1.2, rate=44100, channels=2)
    (check_id,) = recorded(env, [{"id": "a", "audio": name}])

    soe.evaluate([check_id])

    row, pcm = check(check_id), reference_pcm(path)
    assert_scored(row, pcm)
    assert row.chunks_sent == math.ceil(len(pcm) / CHUNK)
    sent = env.session(row.session_id)
    assert (sent["bytes"], sent["audio_sha256"]) == (len(pcm), sha256(pcm))  # raw PCM, not the file


def test_a_16k_mono_wav_is_sent_as_it_is(env):
    path = write_wav(env.folder / "native.wav", 0.5, rate=16000, channels=1)
    (check_id,) = recorded(env, [{"id": "a", "audio": "native.wav"}])
    soe.evaluate([check_id])
    row = check(check_id)
    assert_scored(row, path.read_bytes())
    assert env.session(row.session_id)["audio_sha256"] == sha256(path.read_bytes())


def test_a_16k_mono_wav_url_is_streamed_as_it_is(env):
    path = write_wav(env.folder / "remote.wav", 1.3, rate=16000, channels=1)
    (check_id,) = recorded(env, [{"id": "a", "audio": f"{env.sandbox.url}/media/remote.wav"}])
    soe.evaluate([check_id])
    row = check(check_id)
    assert_scored(row, path.read_bytes())
    assert row.chunks_sent == math.ceil(path.stat().st_size / CHUNK)
    assert env.session(row.session_id)["audio_sha256"] == sha256(path.read_bytes())


def test_a_converted_url_is_scored_too(env):
    path = write_tone(env.folder / "remote.m4a", 1.0)
    (check_id,) = recorded(env, [{"id": "a", "audio": f"{env.sandbox.url}/media/remote.m4a"}])
    soe.evaluate([check_id])
    assert_scored(check(check_id), reference_pcm(path))


# -- limits before anything is sent ------------------------------------------------------------
@pytest.mark.parametrize(("name", "fragment"), [
    ("long.wav", "audio is 1 min 1.0 s long; SOE's sentence mode takes at most 60 s"),
    ("long.m4a", "audio is over 60 s long; SOE's sentence mode takes at most 60 s"),  # decoding stopped there
])
def test_a_url_longer_than_its_mode_takes_fails_before_anything_is_sent(env, name, fragment):
    if name.endswith(".wav"):
        write_wav(env.folder / name, 61, rate=16000, channels=1)
    else:
        write_tone(env.folder / name, 61, channels=1)
    (check_id,) = recorded(env, [{"id": "a", "audio": f"{env.sandbox.url}/media/{name}"}])

    soe.evaluate([check_id])

    row = check(check_id)
    assert (row.status, row.error_reason) == ("failed", "audio_too_long")
    assert fragment in row.error
    assert env.soe_requests() == 0


def test_audio_no_decoder_reads_fails_with_the_reason(env):
    (env.folder / "noise.ogg").write_bytes(b"OggS" + secrets.token_bytes(4000))
    (check_id,) = recorded(env, [{"id": "a", "audio": f"{env.sandbox.url}/media/noise.ogg"}])
    soe.evaluate([check_id])
    row = check(check_id)
    assert (row.status, row.error_reason) == ("failed", "undecodable_audio")
    assert "audio cannot be decoded" in row.error and env.soe_requests() == 0


# -- a result lost after the final chunk -------------------------------------------------------
@pytest.mark.parametrize("kind", ["oral", "keyword"])
def test_a_final_answer_lost_on_the_way_is_asked_for_with_the_sessions_own_action(env, kind):
    """The vendor processes the one and final chunk and the connection drops before its answer:
    the result is asked for with IsQuery (KeywordEvaluate for keywords), not evaluated again."""
    path = write_wav(env.folder / "short.wav", 0.1, rate=16000, channels=1)
    row = {"id": "a", "audio": "short.wav"} | ({"keywords": "red|green"} if kind == "keyword" else {})
    (check_id,) = recorded(env, [row])
    action = "KeywordEvaluate" if kind == "keyword" else "TransmitOralProcessWithInit"
    faults(env, [{"kind": "drop_after", "service": "soe", "action": action, "first_n": 1}])

    soe.evaluate([check_id])

    found = check(check_id)
    assert found.status == "done", found.error
    session = env.session(found.session_id)
    assert session["queries"] == 1 and env.sandbox.stats()["accepted"]["soe"] == {found.session_id: 1}
    if kind == "keyword":
        scores = keyword_scores(path.read_bytes(), [{"RefText": w, "EvalMode": 1, "ScoreCoeff": 1.0}
                                                    for w in ("red", "green")])
        assert found.suggested_score == round(sum(s["SuggestedScore"] for s in scores) / 2, 4)
        assert found.result["KeywordScores"] == scores
    else:
        assert_scored(found, path.read_bytes())


def faults(env: Env, rules: list[dict]) -> None:
    with requests.Session() as http:
        http.trust_env = False  # never through a proxy
        http.post(f"{env.sandbox.url}/_sandbox/config", json={"faults": rules}, timeout=5).raise_for_status()


def _send_every_chunk(env: Env, check_id: int, path: Path, keywords: list[str] | None) -> str:
    """What an earlier delivery did before its result was lost: every chunk sent and acknowledged."""
    settings = get_settings()
    session_id = check(check_id).session_id or soe.new_session_id()
    client, params = soe.client(settings), SoeParams("red", voice_file_type=2)
    data = path.read_bytes()
    parts = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]
    for seq, part in enumerate(parts, start=1):
        if keywords:
            client.keyword_evaluate(session_id, seq, seq == len(parts), part, keywords, params)
        else:
            client.transmit_with_init(session_id, seq, seq == len(parts), part, params)
    set_check(check_id, session_id=session_id, chunks_sent=len(parts), status="running",
              deadline_at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=9))
    return session_id


@pytest.mark.parametrize("kind", ["oral", "keyword"])
def test_within_the_result_window_the_result_is_asked_for_not_evaluated_again(env, kind):
    path = write_wav(env.folder / "a.wav", 0.4, rate=16000, channels=1)
    keywords = ["red", "green"] if kind == "keyword" else None
    (check_id,) = recorded(env, [{"id": "a", "audio": "a.wav", **({"keywords": "red|green"} if keywords else {})}])
    session_id = _send_every_chunk(env, check_id, path, keywords)

    soe.evaluate([check_id])

    found = check(check_id)
    assert (found.status, found.session_id) == ("done", session_id)
    assert env.session(session_id)["queries"] == 1  # with KeywordEvaluate for keywords: the sandbox knows no other
    assert env.sandbox.stats()["accepted"]["soe"] == {session_id: 1}
    if kind == "oral":
        assert_scored(found, path.read_bytes())


def test_after_the_result_window_a_new_session(env):
    path = write_wav(env.folder / "a.wav", 0.4, rate=16000, channels=1)
    (check_id,) = recorded(env, [{"id": "a", "audio": "a.wav"}])
    old = _send_every_chunk(env, check_id, path, None)
    set_check(check_id, deadline_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))

    with pytest.raises(outcome.SentAgain, match=r"^retry in \d+ s \(result_expired\)$"):
        soe.evaluate([check_id])  # called directly, the task's retry raises its exception: the outcome
    waiting = check(check_id)
    assert (waiting.error_reason, waiting.chunks_sent, waiting.attempts) == ("result_expired", 0, 1)
    assert waiting.session_id != old and waiting.deadline_at is None
    soe.evaluate([check_id])

    done = check(check_id)
    assert_scored(done, path.read_bytes())
    assert done.session_id not in (old, None) and env.session(old)["queries"] == 0


# -- async mode ------------------------------------------------------------------------------
def _due(check_id: int) -> None:
    set_check(check_id, next_poll_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))


def test_async_mode_waits_for_the_beat_and_polls_until_finished(env):
    path = write_tone(env.folder / "a.m4a", 0.6)
    (check_id,) = recorded(env, [{"id": "a", "audio": "a.m4a", "soe_mode": "async"}])
    env.config.result_delay_s = 0.8

    soe.evaluate([check_id])

    waiting = check(check_id)
    pcm = reference_pcm(path)
    assert (waiting.status, waiting.vendor_task_id, waiting.lease_until) == ("running", waiting.session_id, None)
    assert waiting.chunks_sent == math.ceil(len(pcm) / CHUNK) and waiting.suggested_score is None
    window = waiting.deadline_at.replace(tzinfo=dt.UTC) - dt.datetime.now(dt.UTC)
    assert dt.timedelta(minutes=9) < window <= dt.timedelta(minutes=10)
    assert poll.poll_soe() == 0  # its first poll is a second away

    _due(check_id)
    assert poll.poll_soe() == 1
    assert (check(check_id).status, check(check_id).polls) == ("running", 1)  # still evaluating
    time.sleep(0.9)
    _due(check_id)
    assert poll.poll_soe() == 1

    done = check(check_id)
    assert_scored(done, pcm)
    assert env.session(done.session_id)["queries"] == 2 and env.session(done.session_id)["async"]


def test_an_async_session_past_its_window_starts_again(env, redis_url):
    write_wav(env.folder / "a.wav", 0.3, rate=16000, channels=1)
    (check_id,) = recorded(env, [{"id": "a", "audio": "a.wav", "soe_mode": "async"}])
    env.config.result_delay_s = 60
    soe.evaluate([check_id])
    old = check(check_id).session_id
    set_check(check_id, deadline_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    _due(check_id)

    assert poll.poll_soe() == 0  # nothing asked of the vendor

    again = check(check_id)
    assert (again.status, again.vendor_task_id, again.chunks_sent, again.attempts) == ("running", None, 0, 1)
    assert again.session_id != old and again.error_reason == "result_expired"
    assert redis.Redis.from_url(redis_url).llen("soe") == 1  # sent to a worker again


def test_an_async_session_out_of_attempts_fails_and_retry_starts_it_anew(env):
    from tasks.retry import retry_failed

    path = write_wav(env.folder / "a.wav", 0.3, rate=16000, channels=1)
    (check_id,) = recorded(env, [{"id": "a", "audio": "a.wav", "soe_mode": "async"}])
    soe.evaluate([check_id])
    set_check(check_id, attempts=get_settings().soe_max_attempts - 1,
              deadline_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    _due(check_id)
    poll.poll_soe()

    failed = check(check_id)
    assert (failed.status, failed.error_reason, failed.vendor_task_id, failed.next_poll_at) == (
        "failed", "result_expired", None, None)
    assert retry_failed() == 1
    soe.evaluate([check_id])  # a new session, its result polled again
    _due(check_id)
    poll.poll_soe()
    assert_scored(check(check_id), path.read_bytes())


# -- oneshot ---------------------------------------------------------------------------------
def test_oneshot_sends_the_decoded_audio_in_one_request(env):
    path = write_tone(env.folder / "a.ogg", 1.0)
    (check_id,) = recorded(env, [{"id": "a", "audio": "a.ogg", "soe_mode": "oneshot"}])
    soe.evaluate([check_id])
    row, pcm = check(check_id), reference_pcm(path)
    assert_scored(row, pcm)
    assert env.session(row.session_id)["chunks"] == 1
    assert env.sandbox.stats()["requests"]["soe.InitOralProcess"] == 1


def test_oneshot_over_3_mb_fails_before_anything_is_sent(env):
    """One request carries the whole file, and SOE takes 3 MB a request: a 100 s paragraph (3.2 MB)
    goes only in stream mode."""
    (env.folder / "big.pcm").write_bytes(b"\x00\x01" * 16000 * 100)
    (check_id,) = recorded(env, [{"id": "q", "audio": "big.pcm", "eval_mode": "paragraph", "soe_mode": "oneshot"}])
    soe.evaluate([check_id])
    row = check(check_id)
    assert (row.status, row.error_reason) == ("failed", "audio_too_large")
    assert "use soe_mode stream" in row.error and env.soe_requests() == 0
