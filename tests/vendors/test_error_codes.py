"""Every error code of the installed official SDKs has an explicit entry, chosen by its
description; no code of theirs falls through to a prefix default."""

from __future__ import annotations

import pytest

from tests.vendors.sdk_oracle import error_codes
from vendors.errors import Disposition
from vendors.gme import GmeClient
from vendors.soe import SoeClient
from vendors.tencent import PREFIX_DEFAULTS, TencentApiClient

RETRY, THROTTLED, PERMANENT = Disposition.RETRY, Disposition.THROTTLED, Disposition.PERMANENT
RESEND, RESTART = Disposition.RESEND, Disposition.RESTART
CLIENTS: dict[str, type[TencentApiClient]] = {"soe": SoeClient, "gme": GmeClient}


@pytest.mark.parametrize("service", sorted(CLIENTS))
def test_every_code_the_installed_sdk_lists_has_an_explicit_entry(service):
    codes = error_codes(service)
    missing = sorted(set(codes) - set(CLIENTS[service].ERRORS))
    assert not missing, f"{service}: codes of the SDK without an entry: {missing}"


@pytest.mark.parametrize("service", sorted(CLIENTS))
def test_every_entry_is_a_code_the_sdk_lists(service):
    """No typo: an entry the SDK does not list would never match what the vendor sends."""
    extra = sorted(set(CLIENTS[service].ERRORS) - set(error_codes(service)))
    assert not extra, f"{service}: entries the installed SDK does not list: {extra}"


@pytest.mark.parametrize("service", sorted(CLIENTS))
def test_every_entry_says_what_the_code_means(service):
    assert all(rule.meaning and rule.reason for rule in CLIENTS[service].ERRORS.values())


# -- the description decides -------------------------------------------------------------
CHECK_FIRST = ("检查", "调整")  # "check …" / "adjust …": the same request would fail again


def expected_by_description(text: str) -> set[Disposition] | None:
    """The dispositions a description allows, by the words the vendor chose; None: the
    description gives no instruction (then the entry is a judgement, tested below)."""
    if any(word in text for word in CHECK_FIRST) and ("重试" in text or "重新初始化" in text):
        return {PERMANENT}
    if "请稍后重试" in text:  # try again later
        return {RETRY, THROTTLED}
    if "重新初始化" in text:  # initialise again
        return {RESTART}
    if "补发前序分片" in text:  # resend the earlier chunks
        return {RESEND}
    if "频率限制" in text or "并发" in text:  # rate or concurrency limits
        return {THROTTLED}
    return None


def described_cases():
    for service in sorted(CLIENTS):
        for code, text in error_codes(service).items():
            allowed = expected_by_description(text)
            if allowed is not None:
                yield pytest.param(service, code, allowed, id=f"{service}:{code}")


@pytest.mark.parametrize(("service", "code", "allowed"), list(described_cases()))
def test_a_code_that_says_what_to_do_is_classified_so(service, code, allowed):
    assert CLIENTS[service].classify(code)[0] in allowed, error_codes(service)[code]


def test_the_descriptions_instruct_on_the_codes_that_matter():
    """The keyword reading above does decide the SOE codes issue 15 names."""
    soe = error_codes("soe")
    assert expected_by_description(soe["FailedOperation.FailedGetSession"]) == {RETRY, THROTTLED}
    assert expected_by_description(soe["FailedOperation.FailedSetSession"]) == {RESTART}
    assert expected_by_description(soe["InvalidParameterValue.RefTextLimitExceeded"]) == {PERMANENT}


# -- the codes issue 15 found misread ----------------------------------------------------
SOE_RETRY_LATER = [
    "FailedOperation.FailedGetEngineIP", "FailedOperation.FailedGetResult",
    "FailedOperation.FailedGetSession", "FailedOperation.FailedGetSessionSeqID",
    "FailedOperation.FailedGetUser", "FailedOperation.FailedSetResult",
    "FailedOperation.FailedSetUser", "FailedOperation.InternalServerError",
    "FailedOperation.JsonCodecError", "FailedOperation.InvalidParameterValue",
]  # fmt: skip
SOE_INITIALISE_AGAIN = [
    "FailedOperation.ErrorGetSession", "FailedOperation.FailedSetSession",
    "FailedOperation.FailedSetSessionSeqID",
]
SOE_SESSION_GONE = [
    "InternalError.NeedToInit", "InternalError.NoConversationFound",
    "InternalError.NoInitBeforeEvaluation", "ResourceUnavailable.NoInitBeforeEvaluation",
    "ResourceUnavailable.NoConversationFound",
]  # fmt: skip


@pytest.mark.parametrize("code", SOE_RETRY_LATER)
def test_soe_try_again_later_codes_are_retried(code):
    assert SoeClient.classify(code)[0] is RETRY


@pytest.mark.parametrize("code", SOE_INITIALISE_AGAIN + SOE_SESSION_GONE)
def test_soe_initialise_again_codes_start_a_new_session(code):
    assert SoeClient.classify(code)[0] is RESTART


@pytest.mark.parametrize("code", SOE_RETRY_LATER + SOE_INITIALISE_AGAIN + SOE_SESSION_GONE)
def test_soe_misread_codes_no_longer_fall_to_a_prefix_default(code):
    """Each had no entry: its prefix default (retry for InternalError, permanent for the rest)
    was wrong for it."""
    assert code in SoeClient.ERRORS
    default = TencentApiClient.rule(code)
    assert SoeClient.classify(code)[0] is not default.disposition


@pytest.mark.parametrize(
    ("code", "disposition", "reason"),
    [
        # judgements: descriptions without an instruction, or "check … then retry"
        ("FailedOperation", PERMANENT, "failed_operation"),
        ("FailedOperation.ErrorGetUser", RETRY, "vendor_cache"),
        ("FailedOperation.EvaluateTimeout", PERMANENT, "evaluate_timeout"),
        ("FailedOperation.FailedInit", PERMANENT, "init_failed"),
        ("FailedOperation.ServiceTimeout", RETRY, "vendor_timeout"),
        ("InternalError.AudioProcessingFailed", PERMANENT, "invalid_audio"),
        ("InternalError.NoError", RETRY, "internal_error"),
        ("InternalError.ShardNoStartWithOne", RESEND, "resend_chunks"),
        ("InternalError.StreamingvoicepkgTimeout", RETRY, "vendor_timeout"),
        ("InvalidParameterValue.SensitiveWords", PERMANENT, "sensitive_words"),
        ("LimitExceeded", PERMANENT, "quota_exceeded"),
        ("ResourceInsufficient.ServerTimeout", PERMANENT, "evaluate_timeout"),
        ("ResourceUnavailable", PERMANENT, "resource_unavailable"),
    ],
)
def test_soe_codes_without_an_instruction(code, disposition, reason):
    assert SoeClient.classify(code) == (disposition, reason)


# -- prefix defaults stay for codes nobody lists ----------------------------------------
@pytest.mark.parametrize(
    ("code", "disposition"),
    [
        ("AuthFailure.SignatureExpire", PERMANENT),  # a common code of API 3.0
        ("RequestLimitExceeded.UinLimitExceeded", THROTTLED),
        ("InternalError.SomethingNew", RETRY),
        ("FailedOperation.SomethingNew", PERMANENT),
        ("Entirely.New", PERMANENT),
    ],
)
@pytest.mark.parametrize("client", [SoeClient, GmeClient])
def test_codes_no_sdk_lists_fall_back_on_their_prefix(client, code, disposition):
    assert code not in client.ERRORS
    assert client.classify(code)[0] is disposition


def test_prefix_defaults_are_only_a_fallback():
    assert set(PREFIX_DEFAULTS) - set(SoeClient.ERRORS) >= {"ServiceUnavailable"}
    assert TencentApiClient.ERRORS == {}
