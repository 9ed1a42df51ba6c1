"""The one retry policy, for Stripe calls and catalog calls alike: exponential backoff with
jitter, bounded by attempts and a deadline.

What may be retried is decided once, where a failure is classified (`Failure.retryable`,
errors.py): for Stripe its `Stripe-Should-Retry` header first, then 429, 409, 5xx, dropped
connections and timeouts, never another 4xx (a retry resends the same idempotency key, so
Stripe acts at most once); for the catalog dropped connections, failovers, serialization
failures, deadlocks, statement timeouts, and 408/429/5xx from PostgREST. A server's
Retry-After is a floor under the backoff.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import tenacity

from stripe_sync.core.errors import ErrorKind, Failure

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6  # in all, the first one included
    deadline_s: float = 300.0  # no new attempt after this long since the first
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0


@dataclass
class RetryStats:
    """How often calls were retried, and the longest time one call waited for its server
    (an outage): what a batch's metadata and the report show."""

    retries: int = 0
    longest_outage_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, retries: int, outage_s: float) -> None:
        with self._lock:
            self.retries += retries
            self.longest_outage_s = max(self.longest_outage_s, outage_s)

    def as_metadata(self, prefix: str) -> dict[str, float]:
        return {
            f"{prefix}_retries": self.retries,
            f"{prefix}_longest_outage_s": round(self.longest_outage_s, 3),
        }


def call_with_retries(
    call: Callable[[], T],
    policy: RetryPolicy,
    *,
    on_rate_limited: Callable[[], None] = lambda: None,
    stats: RetryStats | None = None,
) -> T:
    """`call()`, retried by `policy` while it fails with a retryable `Failure`."""
    backoff = tenacity.wait_random_exponential(
        multiplier=policy.base_delay_s, max=policy.max_delay_s
    )
    started = time.monotonic()

    def wait(state: tenacity.RetryCallState) -> float:
        failure = state.outcome.exception()
        return max(backoff(state), failure.retry_after_s or 0.0)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if state.outcome.exception().kind is ErrorKind.RATE_LIMITED:
            on_rate_limited()

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(
            lambda error: isinstance(error, Failure) and error.retryable
        ),
        wait=wait,
        stop=tenacity.stop_after_attempt(policy.attempts)
        | tenacity.stop_after_delay(policy.deadline_s),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return retrying(call)
    finally:
        retries = retrying.statistics.get("attempt_number", 1) - 1
        if stats is not None and retries:
            stats.record(retries, time.monotonic() - started)
