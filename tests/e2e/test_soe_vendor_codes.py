"""SOE end to end under the vendor's own error codes: 15 % of SOE calls answered with
"try again later" and "initialise again" codes of the SDK's list, the latter dropping the
session at the sandbox, and every file of the batch still scored right."""

from __future__ import annotations

import pytest

from tests.e2e.test_soe_pipeline import check_scores, make_manifest
from vendors.errors import Disposition
from vendors.soe import SoeClient

pytestmark = [pytest.mark.e2e]

RETRY_LATER = [  # "请稍后重试"
    "FailedOperation.FailedGetSession", "FailedOperation.FailedGetEngineIP",
    "FailedOperation.JsonCodecError", "FailedOperation.InvalidParameterValue",
    "InternalError.InitStreamUnfinished",
]  # fmt: skip
INITIALISE_AGAIN = [  # "请重新初始化", or the session not found or released
    "FailedOperation.FailedSetSession", "FailedOperation.ErrorGetSession",
    "InternalError.NoConversationFound", "ResourceUnavailable.NoInitBeforeEvaluation",
]  # fmt: skip


def test_retry_later_and_initialise_again_codes_still_score_every_file(pipeline, tmp_path):
    assert {SoeClient.classify(c)[0] for c in RETRY_LATER} == {Disposition.RETRY}
    assert {SoeClient.classify(c)[0] for c in INITIALISE_AGAIN} == {Disposition.RESTART}
    folder = tmp_path / "readings"
    manifest = make_manifest(folder, 30)
    pipeline.sandbox("config", {"seed": 15, "faults": [
        {"kind": "code", "code": RETRY_LATER, "rate": 0.075, "service": "soe"},
        {"kind": "code", "code": INITIALISE_AGAIN, "rate": 0.075 / 0.925, "service": "soe"},
    ]})  # 7.5 % each, 15 % of the calls in all
    pipeline.start_worker("-c", "4")

    pipeline.cli("ingest", str(manifest))
    pipeline.wait("readings", timeout=120)

    report = pipeline.report("readings")
    assert len(report) == 30
    check_scores(report, folder)
    stats = pipeline.sandbox("stats")
    calls, faults = sum(stats["requests"].values()), stats["faults"].get("code", 0)
    dropped = stats["services"]["soe"]["dropped"]
    print(f"\n{calls} SOE calls, {faults} answered with a code, {len(dropped)} sessions dropped")
    assert 0.08 * calls < faults < 0.25 * calls
    assert dropped and set(dropped.values()) <= set(INITIALISE_AGAIN)
    # every file went on in a new session after "initialise again", scored exactly once
    assert not {r["soe"]["session_id"] for r in report} & set(dropped)
    assert sorted(stats["accepted"]["soe"]) == sorted(r["soe"]["session_id"] for r in report)
    assert set(stats["accepted"]["soe"].values()) == {1}
