"""SOE in the sandbox, over a real socket with our signer: chunk rules, scores, sessions."""

from __future__ import annotations

import base64
import hashlib
import io
import time
import wave

import pytest

from sandbox.server import SandboxThread
from sandbox.soe import keyword_scores, score
from tests.sandbox.helpers import (
    chunk_params,
    chunks,
    error_code,
    new_session_id,
    pcm,
    score_fields,
    transmit_all,
    wav,
)

TRANSMIT = "TransmitOralProcessWithInit"


def session_snapshot(sandbox: SandboxThread, session_id: str) -> dict:
    return sandbox.stats()["services"]["soe"]["sessions"][session_id]


# -- the happy path ------------------------------------------------------------------
def test_chunked_session_finishes_with_the_scores_of_the_reassembled_audio(caller, sandbox):
    audio, sid = pcm(10_000), new_session_id()
    responses = transmit_all(caller, sid, audio, 4096)
    assert [r["Status"] for r in responses] == ["Evaluating", "Evaluating", "Finished"]
    assert responses[0]["PronAccuracy"] == -1 and responses[0]["Words"] == []
    assert score_fields(responses[-1]) == score_fields(score(audio, "the quick brown fox", 1, 1.0))
    assert responses[-1]["SessionId"] == sid and responses[-1]["RequestId"]


def test_snapshot_shows_chunks_bytes_hash_and_result(caller, sandbox):
    audio, sid = pcm(10_000), new_session_id()
    final = transmit_all(caller, sid, audio, 4096)[-1]
    snap = session_snapshot(sandbox, sid)
    assert snap["chunks"] == 3 and snap["bytes"] == len(audio) and snap["finished"]
    assert snap["audio_sha256"] == hashlib.sha256(audio).hexdigest()
    assert snap["result"]["SuggestedScore"] == final["SuggestedScore"]
    assert sandbox.stats()["accepted"]["soe"] == {sid: 1}


def test_is_query_answers_evaluating_then_the_result(caller):
    audio, sid = pcm(4000), new_session_id()
    caller.call(TRANSMIT, chunk_params(sid, 1, audio[:2000]))
    query = {
        "SessionId": sid,
        "IsQuery": 1,
        "SeqId": 1,
        "IsEnd": 0,
        "VoiceFileType": 1,
        "VoiceEncodeType": 1,
        "UserVoiceData": "",
        "RefText": "x",
        "WorkMode": 0,
        "EvalMode": 1,
        "ScoreCoeff": 1,
    }
    assert caller.call(TRANSMIT, query)["Status"] == "Evaluating"
    final = caller.call(TRANSMIT, chunk_params(sid, 2, audio[2000:], is_end=True))
    assert caller.call(TRANSMIT, query)["SuggestedScore"] == final["SuggestedScore"]


def test_is_query_for_an_unknown_session_cannot_find_it(caller):
    query = {"SessionId": new_session_id(), "IsQuery": 1, "UserVoiceData": ""}
    assert error_code(caller.call(TRANSMIT, query)) == "InternalError.CannotFindSession"


def test_wav_session_is_scored_on_the_whole_file(caller):
    audio, sid = wav(3000), new_session_id()
    final = transmit_all(caller, sid, audio, 1024, voice_file_type=2, ref_text="red")[-1]
    assert score_fields(final) == score_fields(score(audio, "red", 1, 1.0))


def test_chinese_ref_text_has_one_word_per_character(caller):
    audio, sid = pcm(6400), new_session_id()
    final = transmit_all(caller, sid, audio, 6400, ref_text="红色的花", ServerType=1)[-1]
    assert [w["Word"] for w in final["Words"]] == ["红", "色", "的", "花"]
    assert final["Words"][-1]["MemEndTime"] == 200  # 6400 bytes of 16 kHz 16-bit audio


# -- chunk rules ---------------------------------------------------------------------
def test_duplicate_chunk_is_an_idempotent_replay(caller, sandbox):
    audio, sid = pcm(6000), new_session_id()
    parts = chunks(audio, 2000)
    caller.call(TRANSMIT, chunk_params(sid, 1, parts[0]))
    caller.call(TRANSMIT, chunk_params(sid, 2, parts[1]))
    replay = caller.call(TRANSMIT, chunk_params(sid, 1, parts[0]))
    assert replay["Status"] == "Evaluating" and session_snapshot(sandbox, sid)["chunks"] == 2
    final = caller.call(TRANSMIT, chunk_params(sid, 3, parts[2], is_end=True))
    again = caller.call(TRANSMIT, chunk_params(sid, 3, parts[2], is_end=True))
    assert score_fields(again) == score_fields(final) and again["Status"] == "Finished"
    assert sandbox.stats()["accepted"]["soe"] == {sid: 1}


def test_gap_answers_past_seq_id_lose_and_the_resend_completes(caller):
    audio, sid = pcm(6000), new_session_id()
    parts = chunks(audio, 2000)
    caller.call(TRANSMIT, chunk_params(sid, 1, parts[0]))
    gap = caller.call(TRANSMIT, chunk_params(sid, 3, parts[2], is_end=True))
    assert error_code(gap) == "FailedOperation.PastSeqIdLose"
    assert "SeqId 2" in gap["Error"]["Message"]
    caller.call(TRANSMIT, chunk_params(sid, 2, parts[1]))
    final = caller.call(TRANSMIT, chunk_params(sid, 3, parts[2], is_end=True))
    assert score_fields(final) == score_fields(score(audio, "the quick brown fox", 1, 1.0))


def test_unknown_session_with_a_later_seq_id_answers_past_seq_id_lose(caller):
    response = caller.call(TRANSMIT, chunk_params(new_session_id(), 2, pcm(100)))
    assert error_code(response) == "FailedOperation.PastSeqIdLose"


def test_same_seq_id_with_other_bytes_answers_seq_id_expired(caller):
    sid = new_session_id()
    caller.call(TRANSMIT, chunk_params(sid, 1, pcm(100, seed=1)))
    assert (
        error_code(caller.call(TRANSMIT, chunk_params(sid, 1, pcm(100, seed=2))))
        == "FailedOperation.SeqIdExpired"
    )


def test_new_chunk_for_a_finished_session_answers_session_expired(caller):
    sid = new_session_id()
    caller.call(TRANSMIT, chunk_params(sid, 1, pcm(100), is_end=True))
    assert (
        error_code(caller.call(TRANSMIT, chunk_params(sid, 2, pcm(100))))
        == "FailedOperation.SessionExpired"
    )
    assert (
        error_code(caller.call(TRANSMIT, chunk_params(sid, 1, pcm(100, 9))))
        == "FailedOperation.SessionExpired"
    )


def test_replaying_the_last_chunk_with_is_end_finishes_the_session(caller):
    sid, audio = new_session_id(), pcm(200)
    caller.call(TRANSMIT, chunk_params(sid, 1, audio))
    assert caller.call(TRANSMIT, chunk_params(sid, 1, audio, is_end=True))["Status"] == "Finished"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        (
            {"UserVoiceData": base64.b64encode(b"abc").decode()},
            "InvalidParameterValue.AudioSizeMustBeEven",
        ),
        ({"UserVoiceData": "not base64!"}, "InternalError.BASE64DecodeFailed"),
        ({"RefText": "  "}, "InternalError.RefTxtEmpty"),
        ({"SeqId": 3001}, "InvalidParameter.SeqIdLimitExceeded"),
        ({"SeqId": 0}, "InvalidParameterValue.InvalidSeqId"),
        ({"ScoreCoeff": 5}, "InvalidParameterValue"),
        ({"VoiceFileType": 2}, "InternalError.InvalidWAVHeader"),
        ({"SeqId": "one"}, "InvalidParameter"),
        ({"SessionId": None}, "MissingParameter"),
    ],
)
def test_invalid_chunks_are_rejected_with_vendor_codes(caller, sandbox, params, code):
    sid = new_session_id()
    response = caller.call(TRANSMIT, {**chunk_params(sid, 1, pcm(100)), **params})
    assert error_code(response) == code
    assert sid not in sandbox.stats()["services"]["soe"]["sessions"]


def test_odd_chunk_message_says_samples_must_not_be_split(caller):
    response = caller.call(TRANSMIT, chunk_params(new_session_id(), 1, b"abc"))
    assert "16-bit sample" in response["Error"]["Message"]


def test_odd_chunks_are_allowed_for_mp3(caller):
    response = caller.call(
        TRANSMIT, chunk_params(new_session_id(), 1, b"abc", voice_file_type=3, is_end=True)
    )
    assert response["Status"] == "Finished"


def test_free_speech_allows_an_empty_ref_text(caller):
    response = caller.call(
        TRANSMIT, chunk_params(new_session_id(), 1, pcm(100), ref_text="", EvalMode=3, is_end=True)
    )
    assert response["Status"] == "Finished" and response["Words"] == []


def test_a_request_over_3_mb_answers_voice_length_too_long(caller):
    sid = new_session_id()
    response = caller.call(TRANSMIT, chunk_params(sid, 1, pcm(3 * 1024 * 1024 + 2)))
    assert error_code(response) == "InvalidParameterValue.VoiceLengthTooLong"


@pytest.mark.parametrize(("eval_mode", "seconds"), [(0, 60), (1, 60), (2, 300), (3, 300)])
def test_audio_longer_than_the_mode_takes_answers_audio_limit_exceeded(caller, eval_mode, seconds):
    """Many chunks of 1 MB (under the 3 MB a request): the one that passes the mode's length is refused."""
    sid, block = new_session_id(), pcm(1024 * 1024)
    fits = seconds * 32000 // len(block)  # whole blocks within the limit
    for seq in range(1, fits + 1):
        assert "Error" not in caller.call(TRANSMIT, chunk_params(sid, seq, block, EvalMode=eval_mode, ref_text="x"))
    over = caller.call(TRANSMIT, chunk_params(sid, fits + 1, block, EvalMode=eval_mode, ref_text="x"))
    assert error_code(over) == "InvalidParameterValue.AudioLimitExceeded"
    assert f"{seconds} s" in over["Error"]["Message"]


def test_the_audio_limits_are_configurable(caller, sandbox, http):
    answer = http.post(f"{sandbox.url}/_sandbox/config", json={"soe_audio_limits_s": {"1": 0.5}}, timeout=5)
    assert answer.json()["config"]["soe_audio_limits_s"] == {"1": 0.5}
    sid = new_session_id()
    assert "Error" not in caller.call(TRANSMIT, chunk_params(sid, 1, pcm(16000)))
    assert error_code(caller.call(TRANSMIT, chunk_params(sid, 2, pcm(2)))) == "InvalidParameterValue.AudioLimitExceeded"


def test_a_wav_header_counts_no_seconds(caller, config):
    config.soe_audio_limits_s = {"1": 1.0}
    audio = wav(16000)  # exactly 1 s of samples after a 44-byte header
    final = transmit_all(caller, new_session_id(), audio, 8000, voice_file_type=2)[-1]
    assert final["Status"] == "Finished"


@pytest.mark.parametrize(("rate", "channels", "width"), [(44100, 2, 2), (8000, 1, 2), (16000, 2, 2), (16000, 1, 1)])
def test_a_wav_that_is_not_16k_mono_16_bit_is_refused(caller, rate, channels, width):
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(pcm(4000))
    response = caller.call(TRANSMIT, chunk_params(new_session_id(), 1, out.getvalue(), voice_file_type=2, is_end=True))
    assert error_code(response) == "InternalError.InvalidWAVHeader"
    assert f"{rate} Hz, {channels} channel(s), {8 * width}-bit" in response["Error"]["Message"]


def test_a_session_expires_when_its_next_chunk_is_late_not_when_it_is_old(caller, config):
    config.soe_session_ttl_s = 0.4
    sid = new_session_id()
    for seq in range(1, 5):  # 0.8 s in all, never 0.4 s between two chunks
        assert "Error" not in caller.call(TRANSMIT, chunk_params(sid, seq, pcm(100, seq)))
        time.sleep(0.2)
    assert caller.call(TRANSMIT, chunk_params(sid, 5, pcm(100, 5), is_end=True))["Status"] == "Finished"


def test_a_finished_result_is_kept_for_the_ttl_after_it_finished(caller, config):
    config.soe_session_ttl_s = 0.5
    sid = new_session_id()
    caller.call(TRANSMIT, chunk_params(sid, 1, pcm(100)))
    time.sleep(0.3)
    caller.call(TRANSMIT, chunk_params(sid, 2, pcm(100, 2), is_end=True))
    time.sleep(0.3)  # 0.6 s after the session began, 0.3 s after it finished
    query = {"SessionId": sid, "IsQuery": 1, "UserVoiceData": ""}
    assert caller.call(TRANSMIT, query)["Status"] == "Finished"
    time.sleep(0.3)
    assert error_code(caller.call(TRANSMIT, query)) == "FailedOperation.ResultExpired"


def test_expired_session_answers_session_expired_then_can_start_over(caller, config):
    config.soe_session_ttl_s = 0.2
    sid = new_session_id()
    caller.call(TRANSMIT, chunk_params(sid, 1, pcm(100)))
    time.sleep(0.3)
    assert (
        error_code(caller.call(TRANSMIT, chunk_params(sid, 2, pcm(100))))
        == "FailedOperation.SessionExpired"
    )
    assert (
        caller.call(TRANSMIT, chunk_params(sid, 1, pcm(100), is_end=True))["Status"] == "Finished"
    )


# -- InitOralProcess + TransmitOralProcess --------------------------------------------
def init_params(sid: str, work_mode: int = 1) -> dict:
    return {
        "SessionId": sid,
        "RefText": "captain",
        "WorkMode": work_mode,
        "EvalMode": 1,
        "ScoreCoeff": 2.0,
        "ServerType": 0,
        "IsAsync": 0,
        "TextMode": 0,
    }


def transmit_params(sid: str, seq_id: int, data: bytes, is_end: bool) -> dict:
    return {
        "SessionId": sid,
        "SeqId": seq_id,
        "IsEnd": int(is_end),
        "VoiceFileType": 1,
        "VoiceEncodeType": 1,
        "UserVoiceData": base64.b64encode(data).decode(),
        "IsLongLifeSession": 1,
    }


def test_one_shot_init_then_transmit(caller):
    sid, audio = new_session_id(), pcm(8000)
    assert caller.call("InitOralProcess", init_params(sid))["SessionId"] == sid
    final = caller.call("TransmitOralProcess", transmit_params(sid, 1, audio, True))
    assert final["Status"] == "Finished"
    assert score_fields(final) == score_fields(score(audio, "captain", 1, 2.0))


def test_streamed_transmit_after_init_follows_the_chunk_rules(caller):
    sid, audio = new_session_id(), pcm(4000)
    caller.call("InitOralProcess", init_params(sid, work_mode=0))
    assert (
        caller.call("TransmitOralProcess", transmit_params(sid, 1, audio[:2000], False))["Status"]
        == "Evaluating"
    )
    final = caller.call("TransmitOralProcess", transmit_params(sid, 2, audio[2000:], True))
    assert score_fields(final) == score_fields(score(audio, "captain", 1, 2.0))


def test_init_is_idempotent_but_refuses_other_parameters(caller):
    sid = new_session_id()
    caller.call("InitOralProcess", init_params(sid))
    assert caller.call("InitOralProcess", init_params(sid))["SessionId"] == sid
    assert (
        error_code(caller.call("InitOralProcess", {**init_params(sid), "RefText": "other"}))
        == "InvalidParameterValue.SessionIdInUse"
    )


def test_transmit_without_init_asks_for_init(caller):
    response = caller.call(
        "TransmitOralProcess", transmit_params(new_session_id(), 1, pcm(10), True)
    )
    assert error_code(response) == "FailedOperation.NeedInitBeforeEvaluation"


# -- KeywordEvaluate -----------------------------------------------------------------
KEYWORDS = [
    {"RefText": "red", "EvalMode": 0, "ServerType": 0, "TextMode": 0},
    {"RefText": "红色", "EvalMode": 1, "ServerType": 1, "TextMode": 0},
]


def keyword_params(sid: str, seq_id: int, data: bytes, is_end: bool) -> dict:
    chunk = transmit_params(sid, seq_id, data, is_end)
    del chunk["IsLongLifeSession"]  # no field of KeywordEvaluate
    return {**chunk, "Keywords": KEYWORDS, "IsQuery": 0}


def test_keyword_evaluate_scores_each_keyword(caller):
    sid, audio = new_session_id(), pcm(3000)
    parts = chunks(audio, 1024)
    answers = [
        caller.call("KeywordEvaluate", keyword_params(sid, i, p, i == len(parts)))
        for i, p in enumerate(parts, start=1)
    ]
    assert answers[0]["KeywordScores"] == []
    assert answers[-1]["KeywordScores"] == keyword_scores(audio, KEYWORDS)
    assert [k["Keyword"] for k in answers[-1]["KeywordScores"]] == ["red", "红色"]
    red = answers[-1]["KeywordScores"][0]
    assert red["SuggestedScore"] == score(audio, "red", 0, 1.0)["SuggestedScore"]


def test_keyword_evaluate_needs_keywords(caller):
    response = caller.call(
        "KeywordEvaluate", {**keyword_params(new_session_id(), 1, pcm(10), True), "Keywords": []}
    )
    assert error_code(response) == "InvalidParameterValue"


def keyword_query(sid: str) -> dict:
    return {**keyword_params(sid, 1, b"", True), "IsQuery": 1}


def test_a_keyword_session_is_queried_with_keyword_evaluate(caller, sandbox):
    sid, audio = new_session_id(), pcm(3000)
    parts = chunks(audio, 1024)
    for i, part in enumerate(parts[:-1], start=1):
        caller.call("KeywordEvaluate", keyword_params(sid, i, part, False))
    assert caller.call("KeywordEvaluate", keyword_query(sid))["KeywordScores"] == []  # not finished yet
    caller.call("KeywordEvaluate", keyword_params(sid, len(parts), parts[-1], True))
    assert caller.call("KeywordEvaluate", keyword_query(sid))["KeywordScores"] == keyword_scores(audio, KEYWORDS)
    assert session_snapshot(sandbox, sid)["queries"] == 2


def test_a_session_queried_with_the_other_action_is_not_found(caller):
    keyword_sid, oral_sid = new_session_id(), new_session_id()
    caller.call("KeywordEvaluate", keyword_params(keyword_sid, 1, pcm(100), True))
    caller.call(TRANSMIT, chunk_params(oral_sid, 1, pcm(100), is_end=True))
    oral_query = {"SessionId": keyword_sid, "IsQuery": 1, "UserVoiceData": ""}
    wrong = caller.call(TRANSMIT, oral_query)
    assert error_code(wrong) == "InternalError.CannotFindSession" and "oral" in wrong["Error"]["Message"]
    assert error_code(caller.call("KeywordEvaluate", keyword_query(oral_sid))) == "InternalError.CannotFindSession"


def test_a_session_id_cannot_switch_between_evaluations(caller):
    sid = new_session_id()
    caller.call("KeywordEvaluate", keyword_params(sid, 1, pcm(10), False))
    response = caller.call(TRANSMIT, chunk_params(sid, 2, pcm(10)))
    assert error_code(response) == "InvalidParameterValue.SessionIdInUse"


# -- score() itself ------------------------------------------------------------------
def test_score_is_deterministic_and_depends_on_every_input():
    audio = pcm(3200)
    base = score(audio, "hello world", 1, 1.0)
    assert score(audio, "hello world", 1, 1.0) == base
    assert score(pcm(3200, seed=5), "hello world", 1, 1.0) != base
    assert score(audio, "hello there", 1, 1.0) != base
    assert score(audio, "hello world", 2, 1.0) != base
    assert score(audio, "hello world", 1, 4.0) != base


def test_score_ranges_and_documented_formula():
    for seed in range(20):
        s = score(pcm(3200, seed), "one two three four", 1, 1.0 + seed % 4)
        assert (
            0 <= s["PronAccuracy"] <= 100
            and 0 <= s["PronFluency"] <= 1
            and 0 <= s["PronCompletion"] <= 1
        )
        c = s["PronCompletion"]
        assert s["SuggestedScore"] == pytest.approx(s["PronAccuracy"] * c * (2 - c), abs=0.02)
        assert [w["Word"] for w in s["Words"]] == ["one", "two", "three", "four"]
        assert all(w["MatchTag"] == 0 and w["MemBeginTime"] < w["MemEndTime"] for w in s["Words"])


# -- async mode (IsAsync 1) -----------------------------------------------------------
def test_async_chunks_carry_no_score_and_the_query_has_it_once_ready(caller, config, sandbox):
    config.result_delay_s = 0.4
    audio, sid = pcm(6000), new_session_id()
    answers = transmit_all(caller, sid, audio, 2000, IsAsync=1)
    assert [a["Status"] for a in answers] == ["Evaluating"] * 3
    assert all(a["PronAccuracy"] == -1 and a["Words"] == [] for a in answers)  # not even the last one
    query = {"SessionId": sid, "IsQuery": 1, "UserVoiceData": "", "IsAsync": 1}
    assert caller.call(TRANSMIT, query)["Status"] == "Evaluating"
    time.sleep(0.5)
    done = caller.call(TRANSMIT, query)
    assert done["Status"] == "Finished"
    assert score_fields(done) == score_fields(score(audio, "the quick brown fox", 1, 1.0))
    snap = session_snapshot(sandbox, sid)
    assert snap["async"] and snap["queries"] == 2
    assert sandbox.stats()["accepted"]["soe"] == {sid: 1}


def test_a_sync_session_is_ready_at_once_whatever_the_result_delay(caller, config):
    config.result_delay_s = 30
    final = transmit_all(caller, new_session_id(), pcm(4000), 2000)[-1]
    assert final["Status"] == "Finished"


def test_query_of_an_expired_finished_session_answers_result_expired(caller, config):
    sid = new_session_id()
    caller.call(TRANSMIT, chunk_params(sid, 1, pcm(100), is_end=True))
    config.soe_session_ttl_s = 0
    query = {"SessionId": sid, "IsQuery": 1, "UserVoiceData": ""}
    assert error_code(caller.call(TRANSMIT, query)) == "FailedOperation.ResultExpired"
