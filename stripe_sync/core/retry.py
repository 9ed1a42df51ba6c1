"""The one retry policy for Stripe calls: exponential backoff with jitter, bounded.

What may be retried is decided once, in `StripeFailure.retryable` (errors.py): Stripe's
`Stripe-Should-Retry` header first, then 429, 409, 5xx, dropped connections and timeouts;
never another 4xx. A retry resends the same idempotency key, so Stripe acts at most once.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

from stripe_sync.core.errors import ErrorKind, StripeFailure

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6  # in all, the first one included
    deadline_s: float = 300.0  # no new attempt after this long since the first
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0


def call_with_retries(
    call: Callable[[], T],
    policy: RetryPolicy,
    *,
    on_rate_limited: Callable[[], None] = lambda: None,
) -> T:
    """`call()`, retried by `policy` while it fails with a retryable `StripeFailure`."""
    backoff = tenacity.wait_random_exponential(
        multiplier=policy.base_delay_s, max=policy.max_delay_s
    )

    def wait(state: tenacity.RetryCallState) -> float:
        failure = state.outcome.exception()
        # Stripe's Retry-After, when it sends one, is a floor under our own backoff.
        return max(backoff(state), failure.retry_after_s or 0.0)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if state.outcome.exception().kind is ErrorKind.RATE_LIMITED:
            on_rate_limited()

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(
            lambda error: isinstance(error, StripeFailure) and error.retryable
        ),
        wait=wait,
        stop=tenacity.stop_after_attempt(policy.attempts)
        | tenacity.stop_after_delay(policy.deadline_s),
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(call)
