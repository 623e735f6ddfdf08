"""Unit tests of the shared machinery: fault rules and plans, peak rate, config from env."""

from __future__ import annotations

import json

import pytest

from sandbox.core import FaultPlan, FaultRule, PeakRate, SandboxConfig, Stats, peak_in_window
from sandbox.server import config_from_env


def test_fault_rule_validates_kind_rate_and_fields():
    with pytest.raises(ValueError):
        FaultRule("explode")
    with pytest.raises(ValueError):
        FaultRule("drop", rate=1.5)
    with pytest.raises(ValueError):
        FaultRule.from_dict({"kind": "drop", "probability": 1})


def test_fault_rule_matching():
    rule = FaultRule("throttle", service="soe", action="KeywordEvaluate")
    assert rule.matches("soe", "KeywordEvaluate")
    assert not rule.matches("soe", "InitOralProcess") and not rule.matches("gme", "KeywordEvaluate")
    assert FaultRule("drop").matches("anything", "at all")


def test_plan_with_the_same_seed_makes_the_same_decisions():
    rules = [FaultRule("throttle", rate=0.3), FaultRule("drop", rate=0.3)]

    def decisions(seed: int) -> list[str | None]:
        plan = FaultPlan(rules, seed)
        return [getattr(plan.pick("soe", "X"), "kind", None) for _ in range(200)]

    assert decisions(7) == decisions(7)
    assert decisions(7) != decisions(8)
    assert {"throttle", "drop", None} == set(decisions(7))


def test_first_n_counts_every_matching_request():
    plan = FaultPlan([FaultRule("drop", first_n=1), FaultRule("throttle", first_n=2)], seed=None)
    kinds = [getattr(plan.pick("soe", "X"), "kind", None) for _ in range(4)]
    assert kinds == ["drop", "throttle", None, None]


def test_first_n_ignores_requests_the_rule_does_not_match():
    plan = FaultPlan([FaultRule("throttle", service="soe", first_n=1)], seed=None)
    assert plan.pick("gme", "ScanVoice") is None
    assert plan.pick("soe", "X") is not None
    assert plan.pick("soe", "X") is None


@pytest.mark.parametrize(
    ("timestamps", "peak"),
    [
        ([], 0),
        ([5.0], 1),
        ([0.0, 0.5, 0.99, 1.0, 1.5], 3),  # [0, 1) holds 3; [0.5, 1.5) holds 3 too
        ([0.0, 0.1, 0.2, 3.0, 3.1, 3.2, 3.3], 4),
        ([float(i) for i in range(10)], 1),
    ],
)
def test_peak_in_window(timestamps, peak):
    assert peak_in_window(timestamps) == peak


def test_stats_to_dict_has_peak_per_vendor():
    stats = Stats()
    for _ in range(3):
        stats.record("soe", "TransmitOralProcessWithInit")
    stats.record("gme", "ScanVoice")
    body = json.loads(json.dumps(stats.to_dict()))
    assert body["peak_rps"] == {"soe": 3, "gme": 1}
    assert body["requests"] == {"soe.TransmitOralProcessWithInit": 3, "gme.ScanVoice": 1}


def test_config_from_env():
    env = {
        "VOXQUEUE_TENCENT_SECRET_ID": "id",
        "VOXQUEUE_TENCENT_SECRET_KEY": "key",
        "VOXQUEUE_SANDBOX_LATENCY_MS": "12.5",
        "VOXQUEUE_SANDBOX_SEED": "9",
        "VOXQUEUE_SANDBOX_FAULTS": json.dumps([{"kind": "slow", "slow_ms": 10, "rate": 0.1}]),
    }
    config = config_from_env(env)
    assert (config.tencent_secret_id, config.tencent_secret_key, config.tencent_token) == (
        "id",
        "key",
        None,
    )
    assert config.latency_ms == 12.5 and config.seed == 9
    assert config.faults == [FaultRule("slow", rate=0.1, slow_ms=10)]


def test_config_from_empty_env_has_defaults():
    config = config_from_env({})
    assert config == SandboxConfig()


def test_config_repr_hides_secrets():
    config = SandboxConfig(
        tencent_secret_id="id", tencent_secret_key="very-secret", tencent_token="tok"
    )
    assert "very-secret" not in repr(config) and "tok" not in repr(config)


def test_config_takes_fault_rules_as_dicts():
    config = SandboxConfig(faults=[{"kind": "drop", "first_n": 2}])
    assert config.faults == [FaultRule("drop", first_n=2)]


def test_peak_rate_keeps_only_the_last_window():
    rate = PeakRate()
    for i in range(6400):
        rate.add(i / 64)  # 64 per second for 100 s (exact in binary floating point)
    assert rate.peak == 64 and rate.count == 6400 and len(rate.recent) <= 64
