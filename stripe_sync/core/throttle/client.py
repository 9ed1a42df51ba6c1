"""The public face of the throttle: `Throttle` (one namespace in one store) and
`open_throttle` (a store from its URL).

The store is a database like the catalog's, retried the same way (the catalog's policy, passed
in): a store that does not answer is reconnected and the operation retried within the policy's
deadline. A request is never sent without a booking: the budget is every process's, so a
process that guessed would overrun it. Past the deadline the operation fails with the store's
"Cannot reach the ... database" sentence, and so does the Stripe call that waited for it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Self, TypeVar

from sqlalchemy.engine import make_url

from stripe_sync.core.database_errors import DatabaseAt
from stripe_sync.core.retry import (
    CALL_TIMEOUT_S,
    NO_RETRY,
    RetryPolicy,
    RetryStats,
    call_with_retries,
)
from stripe_sync.core.throttle.policy import STRIPE_RATE_LIMITS, Policy, Reservation
from stripe_sync.core.throttle.stores import Store
from stripe_sync.core.throttle.stores.memory import MEMORY
from stripe_sync.core.throttle.stores.postgres import PostgresStore
from stripe_sync.core.throttle.stores.redis import RedisStore
from stripe_sync.core.throttle.stores.sqlite import SqliteStore

T = TypeVar("T")


class Throttle:
    """The shared budget of one namespace (one Stripe account) in one store."""

    def __init__(
        self,
        store: Store,
        namespace: str,
        policy: Policy,
        *,
        retry: RetryPolicy = NO_RETRY,
        stats: RetryStats | None = None,
        sleep=time.sleep,
    ):
        self._store = store
        self.namespace = namespace
        self.policy = policy
        self._retry = retry
        self._stats = stats
        self._sleep = sleep
        self.rebooked = 0  # starts given up because this process woke too late for them
        # (uncertainty, store clock - time.time()) of recent round trips; see _offset.
        self._samples: deque[tuple[float, float]] = deque(maxlen=64)
        self._lock = threading.Lock()

    def _retried(self, operation: Callable[[], T]) -> T:
        return call_with_retries(operation, self._retry, stats=self._stats)

    def set_up(self) -> None:
        """Make the store ready (its tables), waiting for it as for any operation."""
        self._retried(self._store.set_up)

    def reserve(self, endpoint: str) -> Reservation:
        """Book the next start for `endpoint` without sleeping (acquire = reserve + sleep)."""
        return self._retried(lambda: self._store.reserve(self.namespace, endpoint, self.policy))

    def acquire(self, endpoint: str) -> None:
        """Block until one request to `endpoint` (e.g. "POST /v1/products") fits both the
        global budget and that endpoint's budget. Thread-safe, and shared by every process
        using the same store and namespace.

        A thread that wakes more than `late_after` past its start (a starved CPU, a GC
        pause, a slow store) would send right before the next booked requests, squeezing
        a window: it gives the start up and books again (up to `rebookings` times)."""
        for attempt in range(self.policy.rebookings + 1):
            began = time.time()
            reservation = self.reserve(endpoint)
            start = reservation.start - self._offset(reservation.now, began, time.time())
            wait = start - time.time()
            if wait > 0:
                self._sleep(wait)
            if time.time() - start <= self.policy.late_after:
                return
            with self._lock:
                if attempt < self.policy.rebookings:
                    self.rebooked += 1

    def _offset(self, store_now: float, began: float, ended: float) -> float:
        """Store clock minus time.time(): 0 for stores that use time.time() (SQLite,
        memory); for PostgreSQL and Redis estimated as NTP does, from the round trip with
        the least uncertainty (half its duration) among the recent ones."""
        if self._store.uses_local_clock:
            return 0.0
        with self._lock:
            self._samples.append(((ended - began) / 2, store_now - (began + ended) / 2))
            return min(self._samples)[1]

    def rate_limited(self) -> None:
        """Stripe answered 429: lower the shared rate for everyone (x `decrease`, at most
        once per `cooldown`, floor `floor` of the budget); it climbs back linearly to 100%
        over `recovery_seconds` without a new 429."""
        self._retried(lambda: self._store.penalize(self.namespace, self.policy))

    @property
    def share(self) -> float:
        """The share of the budget in force now (1.0 without a recent 429)."""
        return self._retried(lambda: self._store.share(self.namespace, self.policy))

    @property
    def rate(self) -> float:
        """The global rate in force now (after the fraction and any 429 penalty)."""
        return self.policy.global_rate * self.share

    @property
    def endpoint_rate(self) -> float:
        """The per-endpoint rate in force now."""
        return self.policy.endpoint_rate * self.share

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# The share of Stripe's limits a throttle uses unless told otherwise (setting
# throttle.fraction): room for the account's other callers, the Dashboard among them.
DEFAULT_FRACTION = 0.8


def open_throttle(
    store_url: str,
    *,
    mode: str,
    namespace: str,
    fraction: float = DEFAULT_FRACTION,
    global_rate: float | None = None,
    endpoint_rate: float | None = None,
    setting: str = "STRIPE_SYNC_THROTTLE_URL",
    timeout_s: float = CALL_TIMEOUT_S,
    retry: RetryPolicy = NO_RETRY,
    stats: RetryStats | None = None,
    **tuning: float,
) -> Throttle:
    """store_url: "sqlite:///path/to/throttle.db" (one machine, many processes; SQLAlchemy's
    form, so "sqlite:////abs/path"), "postgresql://…" or "redis://…" (across machines), or
    "memory://" (this process). mode "test"/"live" picks STRIPE_RATE_LIMITS unless
    global_rate/endpoint_rate are given; the budget used is fraction x those. namespace
    separates Stripe accounts (the caller passes a hash, never a key). The store's calls
    take at most `timeout_s` to connect, are retried by `retry` (counted in `stats`), and
    its failures name `setting`. `tuning` overrides the Policy's decrease, floor,
    recovery_seconds, cooldown, window_guard, late_after, rebookings."""
    if mode not in STRIPE_RATE_LIMITS:
        raise ValueError(f"mode must be one of {sorted(STRIPE_RATE_LIMITS)}, not {mode!r}")
    if not 0 < fraction <= 1:
        raise ValueError("fraction must be in (0, 1]")
    if not namespace or namespace.startswith(("sk_", "rk_", "pk_")):
        raise ValueError("namespace must be a non-empty hash of the account, never a key")
    default_global, default_endpoint = STRIPE_RATE_LIMITS[mode]
    policy = Policy(
        global_rate=fraction * (global_rate if global_rate is not None else default_global),
        endpoint_rate=fraction * (endpoint_rate if endpoint_rate is not None else default_endpoint),
        **tuning,
    )
    scheme = store_url.split(":", 1)[0].split("+", 1)[0].lower()
    store: Store
    if scheme == "memory":
        store = MEMORY
    elif scheme not in ("sqlite", "postgresql", "postgres", "redis", "rediss", "unix"):
        raise ValueError(
            f"unsupported throttle store {scheme!r} (sqlite, postgresql, redis, memory)"
        )
    else:
        at = DatabaseAt("throttle", setting, make_url(store_url))
        if scheme == "sqlite":
            if not store_url.startswith("sqlite:///"):
                raise ValueError(
                    "a SQLite store is sqlite:///relative/path or sqlite:////absolute/path"
                )
            store = SqliteStore(store_url[len("sqlite:///") :], at)
        elif scheme in ("postgresql", "postgres"):
            url = "postgresql:" + store_url.split(":", 1)[1]
            store = PostgresStore(url, at, timeout_s=timeout_s)
        else:
            store = RedisStore(store_url, at, timeout_s=timeout_s)
    throttle = Throttle(store, namespace, policy, retry=retry, stats=stats)
    try:
        throttle.set_up()
    except BaseException:
        throttle.close()
        raise
    return throttle
