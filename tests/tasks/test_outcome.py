"""The line a service task returns (Flower's result column), as a pure function."""

from __future__ import annotations

from tasks import outcome
from tasks.breaker import CircuitOpen
from tasks.outcome import Outcome
from tasks.ratelimit import Throttled
from vendors.errors import Disposition, VendorError


def test_one_checks_outcome_is_its_label():
    assert outcome.summary([outcome.done()]) == "done"
    assert outcome.summary([outcome.failed("auth")]) == "failed: auth"
    assert outcome.summary([outcome.retry(4.2, "throttled")]) == "retry in 4 s (throttled)"
    assert outcome.summary([]) == "skipped"


def test_a_groups_outcomes_are_counted_most_first():
    found = [outcome.done(), outcome.failed("auth"), outcome.done(), Outcome(outcome.SUBMITTED)]
    assert outcome.summary(found) == "2 done; 1 failed: auth; 1 submitted"


def test_retries_show_their_groups_one_countdown():
    found = {
        1: outcome.retry(1.0, "http_5xx"),
        2: outcome.retry(7.0, "throttled"),
        3: outcome.done(),
    }
    assert outcome.summary(list(outcome.sent_again(found, 7.0).values())) == (
        "1 retry in 7 s (http_5xx); 1 retry in 7 s (throttled); 1 done"
    )


def test_a_retry_names_a_reason_code_never_the_vendors_message():
    error = VendorError(
        "soe", "http_5xx", "HTTP 503 secret-token=abc", disposition=Disposition.RETRY
    )
    assert outcome.retry_reason(error) == "http_5xx"
    assert (
        outcome.retry_reason(VendorError("gme", "4000", "x", disposition=Disposition.THROTTLED))
        == "throttled"
    )
    assert outcome.retry_reason(Throttled("soe", 2.0)) == "throttled"
    assert outcome.retry_reason(CircuitOpen("soe", 5.0)) == "circuit open"
