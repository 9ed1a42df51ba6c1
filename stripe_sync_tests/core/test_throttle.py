"""The shared throttle's algorithm, on every store: spacing, global + endpoint together,
the 429 penalty and its recovery, the fraction, independent namespaces; and a store that goes
away (a failover, a cut connection) is waited for, never guessed around.

Most tests book with `Throttle.reserve` (no sleeping) and check the booked starts; the
PostgreSQL store runs in the session's own database, the Redis one under fresh namespaces.
"""

from __future__ import annotations

import itertools
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest

from stripe_sync.core.errors import CatalogFailure
from stripe_sync.core.retry import RetryPolicy, RetryStats
from stripe_sync.core.stripe_api import StripeApi
from stripe_sync.core.throttle import (
    STRIPE_RATE_LIMITS,
    WINDOW_GUARD,
    Policy,
    Throttle,
    book,
    multiplier,
    open_throttle,
    penalized,
)
from stripe_sync.core.throttle.stores.sql import MAX_CONNECTIONS
from stripe_sync_tests.conftest import TEST_SECRET_KEY
from stripe_sync_tests.support.rate_windows import max_in_window

STORES = ["memory", "sqlite", "postgres", "redis"]
EPS = 1e-6
WINDOW = 1.0 + WINDOW_GUARD


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    kind = request.param
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'throttle.db'}"
    if kind == "postgres":
        return request.getfixturevalue("fresh_database_url")
    return request.getfixturevalue("redis_url")


OpenThrottle = Callable[..., Throttle]


@pytest.fixture
def open_(store_url: str) -> Iterator[OpenThrottle]:
    """open_throttle on this test's store, under a fresh namespace unless one is given."""
    opened: list[Throttle] = []

    def opener(**kwargs) -> Throttle:
        kwargs.setdefault("mode", "test")
        kwargs.setdefault("namespace", f"test-{secrets.token_hex(8)}")
        throttle = open_throttle(store_url, **kwargs)
        opened.append(throttle)
        return throttle

    yield opener
    for throttle in opened:
        throttle.close()


def starts(throttle: Throttle, endpoints: list[str]) -> list[float]:
    return [throttle.reserve(endpoint).start for endpoint in endpoints]


# ------------------------------------------------------------------ pure algorithm


def test_book_fills_the_first_gap_wide_enough() -> None:
    assert book(10.0, 0.0, [], 0.1) == 10.0
    assert book(10.0, 0.0, [10.0, 10.1], 0.1) == pytest.approx(10.2)
    # A gap of exactly two spacings between booked starts takes one more.
    assert book(10.0, 0.0, [10.0, 10.2, 10.3], 0.1) == pytest.approx(10.1)
    # A gap too narrow is skipped.
    assert book(10.0, 0.0, [10.0, 10.15, 10.3], 0.1) == pytest.approx(10.4)
    # The endpoint's own arrival time comes first.
    assert book(10.0, 10.5, [10.0, 10.1], 0.1) == 10.5
    # A hole between one and two gaps wide would be lost: the start moves on to leave
    # exactly one gap, which the next request (another endpoint) fills.
    assert book(10.0, 10.28, [10.0, 10.1], 0.1) == pytest.approx(10.3)
    assert book(10.0, 0.0, [10.0, 10.1, 10.3], 0.1) == pytest.approx(10.2)
    # ... but not for a hole under 1.5 gaps, nor one in the past, which harms no one.
    assert book(10.0, 10.22, [10.0, 10.1], 0.1) == 10.22
    assert book(10.0, 10.28, [9.0, 9.1], 0.1) == 10.28
    # Starts already long gone don't matter.
    assert book(10.0, 0.0, [9.0, 9.95], 0.1) == pytest.approx(10.05)


def test_multiplier_and_penalty() -> None:
    policy = Policy(20.0, 20.0, recovery_seconds=10.0, cooldown=1.0)
    assert multiplier(1.0, 0.0, 100.0, policy) == 1.0
    level, at = penalized(1.0, 0.0, 100.0, policy)
    assert (level, at) == (0.5, 100.0)
    assert penalized(level, at, 100.5, policy) == (0.5, 100.0)  # within the cooldown
    assert multiplier(level, at, 105.0, policy) == pytest.approx(0.75)  # linear recovery
    assert multiplier(level, at, 110.0, policy) == 1.0
    level, at = penalized(level, at, 102.0, policy)  # from 0.6 now
    assert level == pytest.approx(0.3)
    for step in range(10):
        level, at = penalized(level, at, 103.0 + step * 1.0, policy)
    assert level == pytest.approx(0.1)  # the floor


# ------------------------------------------------------------------ every store


def test_requests_are_spaced_evenly(open_: OpenThrottle) -> None:
    throttle = open_(fraction=1.0, global_rate=20, endpoint_rate=20)
    reservations = [throttle.reserve("POST /v1/products") for _ in range(25)]
    assert reservations[0].delay < 0.05
    booked = [r.start for r in reservations]
    gaps = [b - a for a, b in itertools.pairwise(booked)]
    assert all(gap == pytest.approx(WINDOW / 20, abs=EPS) for gap in gaps)
    assert max_in_window(booked) <= 20
    # The last waits for its turn: 24 spacings after the first, less the time booking took.
    last = reservations[-1]
    assert last.delay == pytest.approx(booked[0] + 24 * WINDOW / 20 - last.now, abs=EPS)
    assert last.delay > 0


def test_global_budget_spans_endpoints(open_: OpenThrottle) -> None:
    throttle = open_(fraction=1.0, global_rate=20, endpoint_rate=100)
    endpoints = ["POST /v1/products", "POST /v1/prices", "GET /v1/products"] * 10
    booked = sorted(starts(throttle, endpoints))
    gaps = [b - a for a, b in itertools.pairwise(booked)]
    assert min(gaps) >= WINDOW / 20 - EPS
    assert max_in_window(booked) <= 20


def test_endpoint_budget_and_global_budget_together(open_: OpenThrottle) -> None:
    # Slow rates, so that how long booking takes can't matter.
    throttle = open_(fraction=1.0, global_rate=4, endpoint_rate=1)
    products = starts(throttle, ["POST /v1/products"] * 4)
    # The endpoint's 1/s binds: 1.05 s apart, not 0.2625.
    assert all(b - a == pytest.approx(WINDOW / 1, abs=EPS) for a, b in itertools.pairwise(products))
    # Another endpoint isn't held up behind that queue: it takes the global gaps between.
    prices = starts(throttle, ["POST /v1/prices"] * 3)
    assert prices[0] == pytest.approx(products[0] + WINDOW / 4, abs=EPS)
    assert prices[1] == pytest.approx(prices[0] + WINDOW / 1, abs=EPS)
    assert prices[0] < products[1]
    everything = sorted(products + prices)
    assert min(b - a for a, b in itertools.pairwise(everything)) >= WINDOW / 4 - EPS


def test_random_mix_never_exceeds_either_budget(open_: OpenThrottle) -> None:
    throttle = open_(fraction=1.0, global_rate=30, endpoint_rate=12)
    rng = random.Random(5)
    endpoints = [rng.choice(["A", "B", "C", "D"]) for _ in range(80)]
    booked = starts(throttle, endpoints)
    assert max_in_window(booked) <= 30
    for endpoint in "ABCD":
        own = [t for t, e in zip(booked, endpoints, strict=True) if e == endpoint]
        assert max_in_window(own) <= 12
    # Four endpoints at 12/s can nearly fill the 30/s (a global gap narrower than two
    # spacings is lost): far above one endpoint's 12/s, which a single queue would give.
    achieved = len(booked) / (max(booked) - min(booked))
    assert 0.75 * 30 / WINDOW < achieved <= 30 / WINDOW


def test_threads_share_one_budget(open_: OpenThrottle) -> None:
    throttle = open_(fraction=1.0, global_rate=50, endpoint_rate=50)
    booked: list[float] = []
    lock = threading.Lock()

    def worker(endpoint: str) -> None:
        mine = starts(throttle, [endpoint] * 15)
        with lock:
            booked.extend(mine)

    threads = [threading.Thread(target=worker, args=(f"E{i % 2}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    booked.sort()
    assert len(booked) == 60
    assert min(b - a for a, b in itertools.pairwise(booked)) >= WINDOW / 50 - EPS


def test_acquire_sleeps_until_the_booked_start(open_: OpenThrottle) -> None:
    throttle = open_(fraction=1.0, global_rate=50, endpoint_rate=50)
    began = time.monotonic()
    for _ in range(6):
        throttle.acquire("GET /v1/products")
    # At least five spacings; the upper bound only catches gross oversleeping.
    assert 5 * WINDOW / 50 - 0.005 <= time.monotonic() - began < 5 * WINDOW / 50 + 0.3


def test_a_429_halves_the_rate_once_per_cooldown_down_to_the_floor(open_: OpenThrottle) -> None:
    # A slow recovery, so the rates read here can't have moved.
    throttle = open_(
        fraction=1.0, global_rate=20, endpoint_rate=20, cooldown=0.05, recovery_seconds=1000
    )
    assert throttle.rate == pytest.approx(20)
    throttle.rate_limited()
    throttle.rate_limited()  # the same overload: ignored within the cooldown
    assert throttle.rate == pytest.approx(10, rel=0.01)
    assert throttle.endpoint_rate == pytest.approx(10, rel=0.01)
    for _ in range(5):
        time.sleep(0.06)
        throttle.rate_limited()
    assert throttle.rate == pytest.approx(2, rel=0.01)  # 10% of 20


def test_the_lowered_rate_widens_the_spacing(open_: OpenThrottle) -> None:
    throttle = open_(fraction=1.0, global_rate=20, endpoint_rate=20, recovery_seconds=1000)
    throttle.rate_limited()
    booked = starts(throttle, ["POST /v1/products"] * 4)
    assert all(b - a == pytest.approx(WINDOW / 10, rel=0.01) for a, b in itertools.pairwise(booked))


def test_the_rate_recovers_linearly(open_: OpenThrottle) -> None:
    throttle = open_(fraction=1.0, global_rate=20, endpoint_rate=20, recovery_seconds=0.6)
    before = time.monotonic()
    throttle.rate_limited()
    after = time.monotonic()
    time.sleep(0.3)
    # From 10/s back towards 20/s over 0.6 s: bounded by when the 429 and the read were.
    least = time.monotonic() - after
    rate = throttle.rate
    most = time.monotonic() - before
    assert 10 + 10 * least / 0.6 - 0.1 <= rate <= min(20, 10 + 10 * most / 0.6) + 0.1
    time.sleep(0.35)
    assert throttle.rate == pytest.approx(20)


def test_fraction_and_mode_pick_the_budget(open_: OpenThrottle) -> None:
    assert open_(mode="test").rate == pytest.approx(0.8 * STRIPE_RATE_LIMITS["test"][0])
    live = open_(mode="live", fraction=0.5)
    assert live.rate == pytest.approx(50)
    assert live.endpoint_rate == pytest.approx(12.5)
    custom = open_(mode="live", fraction=0.5, global_rate=40, endpoint_rate=10)
    assert (custom.rate, custom.endpoint_rate) == (pytest.approx(20), pytest.approx(5))
    booked = starts(custom, ["X"] * 3)
    assert booked[1] - booked[0] == pytest.approx(WINDOW / 5, abs=EPS)


def test_namespaces_are_independent(open_: OpenThrottle) -> None:
    first = open_(fraction=1.0, global_rate=10, endpoint_rate=10)
    second = open_(fraction=1.0, global_rate=10, endpoint_rate=10)
    for _ in range(5):
        first.reserve("POST /v1/products")
    first.rate_limited()
    assert second.reserve("POST /v1/products").delay < 0.05
    assert second.rate == pytest.approx(10)
    assert first.rate < 6


def test_two_handles_on_one_namespace_share_it(open_: OpenThrottle) -> None:
    namespace = f"test-{secrets.token_hex(8)}"
    first = open_(
        namespace=namespace, fraction=1.0, global_rate=10, endpoint_rate=10, recovery_seconds=1000
    )
    second = open_(
        namespace=namespace, fraction=1.0, global_rate=10, endpoint_rate=10, recovery_seconds=1000
    )
    a = first.reserve("GET /v1/prices").start
    b = second.reserve("GET /v1/prices").start
    assert b - a == pytest.approx(WINDOW / 10, abs=EPS)
    first.rate_limited()
    assert second.rate == pytest.approx(5, rel=0.01)


# ------------------------------------------------------------------ arguments


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "sandbox"},
        {"fraction": 0},
        {"fraction": 1.5},
        {"namespace": "sk_test_123"},
        {"namespace": ""},
        {"decrease": 1.5},
    ],
)
def test_bad_arguments_are_refused(kwargs: dict) -> None:
    arguments = {"mode": "test", "namespace": "abc"} | kwargs
    with pytest.raises(ValueError):
        open_throttle("memory://", **arguments)


@pytest.mark.parametrize("url", ["mysql://x", "sqlite:///:memory:", "sqlite://relative"])
def test_unsupported_stores_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        open_throttle(url, mode="test", namespace="abc")


# ------------------------------------------------------------------ the client side


def test_a_late_waker_gives_its_start_up_and_books_again(open_: OpenThrottle) -> None:
    throttle = open_(fraction=1.0, global_rate=50, endpoint_rate=50)
    naps: list[float] = []

    def oversleep_once(seconds: float) -> None:
        naps.append(seconds)
        time.sleep(seconds + (0.08 if len(naps) == 1 else 0))

    throttle._sleep = oversleep_once
    throttle.reserve("GET /v1/products")  # someone else holds the first start
    throttle.acquire("GET /v1/products")
    # Woke 80 ms late: booked again (a start that is now) instead of sending late.
    assert throttle.rebooked == 1
    assert len(naps) == 1


class _SkewedStore:
    """A store whose clock runs `skew` seconds ahead of time.time(), as a remote one may."""

    uses_local_clock = False

    def __init__(self, inner, skew: float):
        self.inner, self.skew = inner, skew

    def reserve(self, namespace, endpoint, policy):
        reservation = self.inner.reserve(namespace, endpoint, policy)
        return type(reservation)(reservation.now + self.skew, reservation.start + self.skew)

    def penalize(self, namespace, policy):
        self.inner.penalize(namespace, policy)

    def share(self, namespace, policy):
        return self.inner.share(namespace, policy)

    def close(self):
        pass


@pytest.mark.parametrize("skew", [-30.0, 0.0, 3600.0])
def test_a_skewed_store_clock_does_not_shift_the_sleeps(skew: float) -> None:
    local = open_throttle(
        "memory://",
        mode="test",
        namespace=f"t-{secrets.token_hex(8)}",
        global_rate=50,
        endpoint_rate=50,
        fraction=1.0,
    )
    throttle = Throttle(_SkewedStore(local._store, skew), local.namespace, local.policy)
    began = time.monotonic()
    for _ in range(6):
        throttle.acquire("POST /v1/prices")
    assert 5 * WINDOW / 50 - 0.005 <= time.monotonic() - began < 5 * WINDOW / 50 + 0.3
    assert throttle.rebooked < 3  # a wrong offset: every start late, 3 rebookings each


def test_many_threads_share_a_few_connections_to_a_postgres_store(fresh_database_url) -> None:
    application = f"throttle-{secrets.token_hex(4)}"  # to count its connections by
    throttle = open_throttle(
        f"{fresh_database_url}?application_name={application}",
        mode="test",
        namespace=f"test-{secrets.token_hex(8)}",
        global_rate=1000,
        endpoint_rate=1000,
    )
    threads = [threading.Thread(target=starts, args=(throttle, [f"E{i}"] * 5)) for i in range(32)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with psycopg.connect(fresh_database_url) as connection:
            held = connection.execute(
                "select count(*) from pg_stat_activity where application_name = %s", [application]
            ).fetchone()[0]
    finally:
        throttle.close()

    # One connection a thread would be 32: reservations take turns on a row lock anyway.
    assert 1 <= held <= MAX_CONNECTIONS


# ------------------------------------------------------------------ a store that goes away

# The deadline bounds the waits, as with the default policy; quicker backoff for a test.
QUICK = RetryPolicy(attempts=None, deadline_s=20, base_delay_s=0.05, max_delay_s=0.3)


@pytest.fixture(params=["postgres", "redis"])
def store_behind_proxy(request: pytest.FixtureRequest):
    """(proxy, the store's URL through it), for a PostgreSQL or a Redis store."""
    return request.getfixturevalue(
        "flaky_catalog" if request.param == "postgres" else "flaky_redis"
    )


def opened_through(url: str, retry: RetryPolicy, stats: RetryStats) -> Throttle:
    return open_throttle(
        url, mode="test", namespace=f"test-{secrets.token_hex(8)}", retry=retry, stats=stats
    )


def test_a_store_in_a_failover_is_waited_for_and_the_booking_then_made(store_behind_proxy):
    proxy, url = store_behind_proxy
    stats = RetryStats()
    with opened_through(url, QUICK, stats) as throttle:
        throttle.reserve("GET /v1/products")
        proxy.failover(1.0)

        booked = throttle.reserve("GET /v1/products")

    assert booked.start > 0
    assert proxy.refused > 0 and stats.retries > 0 and stats.longest_outage_s >= 0.5


def test_a_pooled_connection_the_server_closed_is_replaced_at_once_without_a_retry(
    flaky_catalog,
):
    proxy, url = flaky_catalog
    stats = RetryStats()
    with opened_through(url, QUICK, stats) as throttle:
        throttle.reserve("GET /v1/products")
        proxy.cut_all()  # as a pooler's idle timeout or a network blip does

        throttle.reserve("GET /v1/products")

    assert proxy.cuts > 0 and stats.retries == 0


def test_a_store_away_past_the_deadline_fails_the_call_and_no_request_is_sent(
    store_behind_proxy, emulator
):
    proxy, url = store_behind_proxy
    brief = RetryPolicy(attempts=None, deadline_s=1.0, base_delay_s=0.05, max_delay_s=0.2)
    throttle = opened_through(url, brief, RetryStats())
    api = StripeApi(TEST_SECRET_KEY, api_base=emulator.base_url, throttle=throttle)
    proxy.down()

    with pytest.raises(CatalogFailure) as failure:
        api.account()

    api.close()
    assert str(failure.value).startswith("Cannot reach the throttle database at 127.0.0.1:")
    assert emulator.requests() == []  # no booking, no request
