"""The retry policies: backoff, jitter, give-up and the visibility rule, as pure functions."""

from __future__ import annotations

import pytest

from config.celery import MAX_COUNTDOWN_S, VISIBILITY_TIMEOUT
from config.settings import Settings
from tasks import policy
from tasks.policy import RetryPolicy

LOW, HIGH = (lambda: 0.0), (lambda: 1.0)


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [
        (1, 0.5, 1.0),
        (2, 1.0, 2.0),
        (3, 2.0, 4.0),
        (4, 4.0, 8.0),
        (5, 5.0, 10.0),
        (50, 5.0, 10.0),
    ],
)
def test_backoff_doubles_to_its_cap_with_jitter_in_the_upper_half(attempt, low, high):
    p = RetryPolicy(attempts=None, base=1.0, cap=10.0)
    assert p.delay(attempt, LOW) == low
    assert p.delay(attempt, HIGH) == high
    assert p.delay(attempt, lambda: 0.5) == (low + high) / 2


def test_a_schedule_without_jitter_is_its_ceiling():
    assert [policy.POLL.delay(n) for n in (1, 2, 3, 4, 5, 6, 7, 1000)] == [
        2,
        4,
        8,
        16,
        32,
        60,
        60,
        60,
    ]
    assert [policy.SOE_POLL.delay(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 8, 10]


@pytest.mark.parametrize(("attempts", "exhausted"), [(0, False), (5, False), (6, True), (7, True)])
def test_moderation_gives_up_after_six_attempts(attempts, exhausted):
    assert policy.MODERATION.exhausted(attempts) is exhausted


def test_a_policy_without_a_limit_never_gives_up():
    assert not policy.INFRA.exhausted(10**6)


def test_soe_attempts_come_from_the_settings():
    p = policy.soe(Settings(soe_max_attempts=3, _env_file=None))
    assert (p.exhausted(2), p.exhausted(3)) == (False, True)


def test_a_countdown_takes_the_hint_but_never_passes_the_visibility_rule():
    assert policy.MODERATION.countdown(1, 7.5) == 7.5  # a vendor's Retry-After
    assert policy.MODERATION.countdown(1, 0.0) == 0.0
    assert policy.MODERATION.countdown(1, 10**6) == MAX_COUNTDOWN_S  # a hostile Retry-After
    assert policy.MODERATION.countdown(3, None, HIGH) == 4.0


def test_every_countdown_policy_stays_under_the_visibility_timeout():
    assert MAX_COUNTDOWN_S < VISIBILITY_TIMEOUT
    for p in (*policy.COUNTDOWNS, policy.soe(Settings(_env_file=None))):
        assert p.cap <= MAX_COUNTDOWN_S
        assert p.countdown(10**6, None, HIGH) <= MAX_COUNTDOWN_S
