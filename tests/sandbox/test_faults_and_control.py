"""Fault injection, latency, counters and the control API, over a real socket."""

from __future__ import annotations

import time

import pytest
import requests

from sandbox.soe import score
from tests.sandbox.helpers import (
    chunk_params,
    chunks,
    error_code,
    new_session_id,
    pcm,
    score_fields,
)

TRANSMIT = "TransmitOralProcessWithInit"


def configure(http, sandbox, **settings) -> dict:
    response = http.post(sandbox.url + "/_sandbox/config", json=settings)
    assert response.status_code == 200, response.text
    return response.json()


def stats(http, sandbox) -> dict:
    return http.get(sandbox.url + "/_sandbox/stats").json()


def one_chunk(sid: str | None = None) -> dict:
    return chunk_params(sid or new_session_id(), 1, pcm(100), is_end=True)


# -- control API ---------------------------------------------------------------------
def test_health(http, sandbox):
    assert http.get(sandbox.url + "/_sandbox/health").json() == {"ok": True}


def test_stats_count_requests_per_endpoint_and_accepted_sessions(caller, http, sandbox):
    sid = new_session_id()
    caller.call(TRANSMIT, one_chunk(sid))
    caller.call(TRANSMIT, one_chunk(sid))  # a replay: counted, not accepted again
    caller.call("InitOralProcess", {"SessionId": new_session_id(), "RefText": "a", "WorkMode": 1})
    body = stats(http, sandbox)
    assert body["requests"] == {"soe.TransmitOralProcessWithInit": 2, "soe.InitOralProcess": 1}
    assert body["vendor_requests"] == {"soe": 3}
    assert body["accepted"] == {"soe": {sid: 1}}
    assert 1 <= body["peak_rps"]["soe"] <= 3
    assert sum(body["per_second"]["soe"].values()) == 3


def test_control_calls_are_not_counted(http, sandbox):
    http.get(sandbox.url + "/_sandbox/health")
    assert stats(http, sandbox)["requests"] == {}


def test_reset_clears_state_and_stats(caller, http, sandbox):
    caller.call(TRANSMIT, one_chunk())
    assert http.post(sandbox.url + "/_sandbox/reset").json() == {"ok": True}
    body = stats(http, sandbox)
    assert (
        body["requests"] == {}
        and body["accepted"] == {}
        and body["services"]["soe"]["sessions"] == {}
    )


def test_config_replaces_run_time_settings(http, sandbox):
    body = configure(
        http, sandbox, latency_ms=5, seed=3, faults=[{"kind": "throttle", "rate": 0.5}]
    )
    assert body["config"]["latency_ms"] == 5 and body["config"]["seed"] == 3
    assert body["config"]["faults"][0]["kind"] == "throttle"
    assert http.get(sandbox.url + "/_sandbox/config").json()["config"] == body["config"]


@pytest.mark.parametrize(
    "settings",
    [
        {"faults": [{"kind": "explode"}]},
        {"faults": [{"kind": "drop", "rate": 2}]},
        {"tencent_secret_key": "x"},
        {"latency_ms": "fast"},
        {"faults": [{"kind": "drop", "when": 1}]},
    ],
)
def test_config_rejects_bad_settings_and_changes_nothing(http, sandbox, settings):
    response = http.post(sandbox.url + "/_sandbox/config", json=settings)
    assert response.status_code == 400 and response.json()["ok"] is False
    assert http.get(sandbox.url + "/_sandbox/config").json()["config"]["faults"] == []


# -- faults --------------------------------------------------------------------------
def test_throttle_is_request_limit_exceeded_for_the_first_n(caller, http, sandbox):
    configure(http, sandbox, faults=[{"kind": "throttle", "service": "soe", "first_n": 2}])
    codes = [error_code(caller.call(TRANSMIT, one_chunk())) for _ in range(3)]
    assert codes == ["RequestLimitExceeded", "RequestLimitExceeded", None]
    body = stats(http, sandbox)
    assert body["faults"] == {"throttle": 2} and body["requests"][f"soe.{TRANSMIT}"] == 3


def test_overload_is_the_soe_server_overload_code(caller, http, sandbox):
    configure(http, sandbox, faults=[{"kind": "overload", "action": TRANSMIT, "first_n": 1}])
    assert error_code(caller.call(TRANSMIT, one_chunk())) == "InternalError.ServerOverload"


def test_error5xx_is_http_503_with_a_body(caller, http, sandbox):
    configure(http, sandbox, faults=[{"kind": "error5xx", "first_n": 1}])
    response = caller.post(TRANSMIT, one_chunk())
    assert response.status_code == 503 and response.text


def test_drop_closes_the_connection_before_anything_happens(caller, http, sandbox):
    configure(http, sandbox, faults=[{"kind": "drop", "first_n": 1}])
    sid = new_session_id()
    with pytest.raises(requests.ConnectionError):
        caller.post(TRANSMIT, one_chunk(sid))
    body = stats(http, sandbox)
    assert body["services"]["soe"]["sessions"] == {} and body["faults"] == {"drop": 1}
    assert body["requests"] == {f"soe.{TRANSMIT}": 1}
    assert caller.call(TRANSMIT, one_chunk(sid))["Status"] == "Finished"


def test_drop_after_keeps_the_state_so_a_retry_is_a_replay(caller, http, sandbox):
    audio, sid = pcm(4000), new_session_id()
    first, last = chunks(audio, 2000)
    caller.call(TRANSMIT, chunk_params(sid, 1, first))
    configure(http, sandbox, faults=[{"kind": "drop_after", "first_n": 1}])
    with pytest.raises(requests.ConnectionError):
        caller.post(TRANSMIT, chunk_params(sid, 2, last, is_end=True))
    assert stats(http, sandbox)["accepted"] == {"soe": {sid: 1}}  # the vendor did finish it
    retry = caller.call(TRANSMIT, chunk_params(sid, 2, last, is_end=True))
    assert score_fields(retry) == score_fields(score(audio, "the quick brown fox", 1, 1.0))
    assert stats(http, sandbox)["accepted"] == {"soe": {sid: 1}}


def test_slow_delays_the_answer(caller, http, sandbox):
    configure(http, sandbox, faults=[{"kind": "slow", "slow_ms": 300, "first_n": 1}])
    start = time.monotonic()
    assert caller.call(TRANSMIT, one_chunk())["Status"] == "Finished"
    assert time.monotonic() - start >= 0.3


def test_latency_is_added_to_every_vendor_call(caller, http, sandbox):
    configure(http, sandbox, latency_ms=150)
    start = time.monotonic()
    caller.call(TRANSMIT, one_chunk())
    caller.call(TRANSMIT, one_chunk())
    assert time.monotonic() - start >= 0.3
    start = time.monotonic()
    http.get(sandbox.url + "/_sandbox/health")
    assert time.monotonic() - start < 0.15


def test_fault_rules_filter_by_service_and_action(caller, http, sandbox):
    configure(
        http,
        sandbox,
        faults=[
            {"kind": "throttle", "service": "gme"},
            {"kind": "throttle", "service": "soe", "action": "KeywordEvaluate"},
        ],
    )
    assert "Error" not in caller.call(TRANSMIT, one_chunk())


def test_reset_restarts_the_fault_plan(caller, http, sandbox):
    configure(http, sandbox, faults=[{"kind": "throttle", "first_n": 1}])
    assert error_code(caller.call(TRANSMIT, one_chunk())) == "RequestLimitExceeded"
    assert error_code(caller.call(TRANSMIT, one_chunk())) is None
    http.post(sandbox.url + "/_sandbox/reset")
    assert error_code(caller.call(TRANSMIT, one_chunk())) == "RequestLimitExceeded"


def test_seeded_faults_are_reproducible(caller, http, sandbox):
    def run() -> list[str | None]:
        configure(http, sandbox, seed=42, faults=[{"kind": "throttle", "rate": 0.5}])
        return [error_code(caller.call(TRANSMIT, one_chunk())) for _ in range(16)]

    first = run()
    assert run() == first
    assert 0 < first.count("RequestLimitExceeded") < 16


def test_peak_rps_counts_a_burst(caller, http, sandbox):
    for _ in range(5):
        caller.call(TRANSMIT, one_chunk())
    assert stats(http, sandbox)["peak_rps"]["soe"] == 5
