import time

import pytest

from stripe_sync.core.errors import CatalogFailure, ErrorKind, Failure, StripeFailure
from stripe_sync.core.retry import RetryPolicy, RetryStats, call_with_retries

FAST = RetryPolicy(attempts=4, deadline_s=10, base_delay_s=0.001, max_delay_s=0.01)


def failing(*failures: Failure):
    """A call that fails with `failures` in turn, then answers "ok"; counts its attempts."""
    attempts = []

    def call():
        attempts.append(1)
        if len(attempts) <= len(failures):
            raise failures[len(attempts) - 1]
        return "ok"

    return call, attempts


@pytest.mark.parametrize(
    "failure",
    [
        StripeFailure(ErrorKind.RETRYABLE, "boom", status=500),
        StripeFailure(ErrorKind.RETRYABLE, "in flight", status=409),
        StripeFailure(ErrorKind.RETRYABLE, "connection dropped"),
        StripeFailure(ErrorKind.RATE_LIMITED, "slow down", status=429),
        StripeFailure(ErrorKind.BAD_DATA, "try again", status=400, should_retry=True),
    ],
)
def test_retryable_failures_are_retried_until_the_call_succeeds(failure):
    call, attempts = failing(failure, failure)
    assert call_with_retries(call, FAST) == "ok"
    assert len(attempts) == 3


@pytest.mark.parametrize(
    "failure",
    [
        StripeFailure(ErrorKind.BAD_DATA, "bad", status=400),
        StripeFailure(ErrorKind.BAD_DATA, "missing", status=404),
        StripeFailure(ErrorKind.FATAL, "bad key", status=401),
        StripeFailure(ErrorKind.RETRYABLE, "don't", status=500, should_retry=False),
    ],
)
def test_other_failures_and_stripes_no_are_never_retried(failure):
    call, attempts = failing(failure)
    with pytest.raises(StripeFailure):
        call_with_retries(call, FAST)
    assert len(attempts) == 1


def test_the_attempt_limit_ends_the_retries_with_the_last_failure():
    boom = StripeFailure(ErrorKind.RETRYABLE, "boom", status=503)
    call, attempts = failing(*[boom] * 10)
    with pytest.raises(StripeFailure, match="boom"):
        call_with_retries(call, FAST)
    assert len(attempts) == 4


def test_the_deadline_ends_the_retries():
    boom = StripeFailure(ErrorKind.RETRYABLE, "boom", status=503)
    call, attempts = failing(*[boom] * 100)
    with pytest.raises(StripeFailure):
        call_with_retries(
            call, RetryPolicy(attempts=100, deadline_s=0.2, base_delay_s=0.05, max_delay_s=0.05)
        )
    assert 2 <= len(attempts) < 100


def test_retry_after_is_a_floor_under_the_backoff():
    call, _ = failing(StripeFailure(ErrorKind.RATE_LIMITED, "wait", status=429, retry_after_s=0.3))
    started = time.monotonic()
    call_with_retries(call, FAST)
    assert time.monotonic() - started >= 0.3


def test_a_429_tells_the_throttle_before_the_retry():
    told = []
    call, _ = failing(StripeFailure(ErrorKind.RATE_LIMITED, "slow down", status=429))
    call_with_retries(call, FAST, on_rate_limited=lambda: told.append(1))
    assert told == [1]


def test_a_failure_of_another_layer_is_not_retried_by_this_one():
    store_away = CatalogFailure(ErrorKind.RETRYABLE, "Cannot reach the throttle database")
    call, attempts = failing(store_away)
    with pytest.raises(CatalogFailure):
        call_with_retries(call, FAST, retried=StripeFailure)
    assert len(attempts) == 1


def test_without_an_attempt_limit_the_deadline_alone_ends_the_retries():
    away = CatalogFailure(ErrorKind.RETRYABLE, "away")
    call, attempts = failing(*[away] * 1000)
    policy = RetryPolicy(attempts=None, deadline_s=0.3, base_delay_s=0.001, max_delay_s=0.01)
    with pytest.raises(CatalogFailure):
        call_with_retries(call, policy)
    assert len(attempts) > 10


def test_waiting_for_a_server_that_is_away_is_said_once_with_how_long():
    told: list[str] = []
    stats = RetryStats(on_waiting=told.append)
    away = CatalogFailure(ErrorKind.RETRYABLE, "Cannot reach the catalog database at db:5432.")
    busy = CatalogFailure(ErrorKind.RATE_LIMITED, "slow down")
    policy = RetryPolicy(attempts=10, deadline_s=30, base_delay_s=0.001, max_delay_s=0.01)

    call_with_retries(failing(busy)[0], policy, stats=stats)
    assert told == []  # a busy server is no outage to announce
    for _ in range(2):
        call_with_retries(failing(away, away)[0], policy, stats=stats)

    assert told == ["Cannot reach the catalog database at db:5432. Waiting up to 30 s for it."]
    assert stats.retries == 5
