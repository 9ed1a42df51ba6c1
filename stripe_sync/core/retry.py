"""The one retry policy, for Stripe calls and every database the pipeline talks to (the
catalog, the state, the throttle's store) alike: exponential backoff with jitter, bounded by
attempts and a deadline.

What may be retried is decided once, where a failure is classified (`Failure.retryable`,
errors.py): for Stripe its `Stripe-Should-Retry` header first, then 429, 409, 5xx, dropped
connections and timeouts, never another 4xx (a retry resends the same idempotency key, so
Stripe acts at most once); for the catalog dropped connections, failovers, serialization
failures, deadlocks, statement timeouts, and 408/429/5xx from PostgREST. A server's
Retry-After is a floor under the backoff.

Each layer retries its own failures only: a Stripe call retries Stripe's answers, not a
throttle store that stayed away past its own deadline (`retried`), so no wait is multiplied
by another's.
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

# What one request, connection or statement may take, unless the settings say otherwise
# (catalog.timeout_s, stripe.timeout_s).
CALL_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class RetryPolicy:
    """How a call is retried; the defaults are a Stripe call's (settings stripe.max_attempts,
    stripe.deadline_s)."""

    attempts: int | None = 6  # in all, the first one included; None: as many as fit the deadline
    deadline_s: float = 300.0  # no new attempt after this long since the first
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0


NO_RETRY = RetryPolicy(attempts=1)


@dataclass
class RetryStats:
    """How often calls were retried, and the longest time one call waited for its server
    (an outage): what a batch's metadata and the report show. `on_waiting`: told once, in a
    sentence, when a call first has to wait for a server that does not answer (a command
    says so instead of seeming to hang)."""

    retries: int = 0
    longest_outage_s: float = 0.0
    on_waiting: Callable[[str], None] | None = field(default=None, repr=False, compare=False)
    _told: bool = field(default=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, retries: int, outage_s: float) -> None:
        with self._lock:
            self.retries += retries
            self.longest_outage_s = max(self.longest_outage_s, outage_s)

    def waiting(self, failure: Failure, seconds_left: float) -> None:
        """A call waits for a server that failed with `failure`; tell `on_waiting` the first
        time a server is away (not merely busy)."""
        with self._lock:
            if self.on_waiting is None or self._told or failure.kind is not ErrorKind.RETRYABLE:
                return
            self._told = True
        self.on_waiting(f"{failure} Waiting up to {max(1, round(seconds_left))} s for it.")

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
    retried: type[Failure] = Failure,
) -> T:
    """`call()`, retried by `policy` while it fails with a retryable `Failure` of the kind
    `retried`; any other error ends it at once."""
    backoff = tenacity.wait_random_exponential(
        multiplier=policy.base_delay_s, max=policy.max_delay_s
    )
    started = time.monotonic()

    def wait(state: tenacity.RetryCallState) -> float:
        failure = state.outcome.exception()
        return max(backoff(state), failure.retry_after_s or 0.0)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        failure = state.outcome.exception()
        if failure.kind is ErrorKind.RATE_LIMITED:
            on_rate_limited()
        if stats is not None:
            stats.waiting(failure, policy.deadline_s - (time.monotonic() - started))

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(
            lambda error: isinstance(error, retried) and error.retryable
        ),
        wait=wait,
        stop=tenacity.stop_after_delay(policy.deadline_s)
        | (
            tenacity.stop_after_attempt(policy.attempts) if policy.attempts else tenacity.stop_never
        ),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return retrying(call)
    finally:
        retries = retrying.statistics.get("attempt_number", 1) - 1
        if stats is not None and retries:
            stats.record(retries, time.monotonic() - started)
