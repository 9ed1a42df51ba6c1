"""Emulator knobs: rate limits, fault injection, latency, and how stripe-python sees them.

All tests here drive the emulator's control API and are skipped against real Stripe
("emulator knob"). The ``emulator`` fixture restores the baseline knobs afterwards.
"""

from __future__ import annotations

import http.client
import threading
import time
from urllib.parse import urlencode, urlsplit

import pytest
import stripe

from ._helpers import assert_stripe_error

pytestmark = pytest.mark.emulator_only


class Raw:
    """Minimal raw HTTP client on http.client (cheap per-thread connections)."""

    def __init__(self, base_url: str, key: str):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self.key = key

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=30)

    def send(self, conn, method="GET", path="/v1/products?limit=1", form=None) -> int:
        headers = {"Authorization": f"Bearer {self.key}"}
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status

    def burst(self, requests: list[tuple[str, str, dict | None]]) -> tuple[list[int], float]:
        """Fire all requests at once (one thread and connection each)."""
        n = len(requests)
        conns = [self.connect() for _ in range(n)]
        for c in conns:
            c.connect()
        barrier = threading.Barrier(n + 1)
        statuses: list[int] = [0] * n

        def go(i: int) -> None:
            method, path, form = requests[i]
            barrier.wait()
            try:
                statuses[i] = self.send(conns[i], method, path, form)
            except (OSError, http.client.HTTPException):
                statuses[i] = -1

        threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        barrier.wait()
        started = time.monotonic()
        for t in threads:
            t.join(30)
        elapsed = time.monotonic() - started
        for c in conns:
            c.close()
        return statuses, elapsed


@pytest.fixture
def raw(stripe_target) -> Raw:
    return Raw(stripe_target.base_url, stripe_target.api_key)


def _v1(log: list[dict]) -> list[dict]:
    return [r for r in log if r["path"].startswith("/v1/")]


def test_a_burst_of_50_requests_at_10_per_second_gets_at_least_35_429s(emulator, raw):
    emulator.configure(rate_limit=10, endpoint_rate_limit=None)
    statuses, elapsed = raw.burst([("GET", "/v1/products?limit=1", None)] * 50)
    assert elapsed < 1.0, f"burst took {elapsed:.2f}s, the premise is one second"
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(429) >= 35, statuses


def test_requests_spaced_below_the_rate_limit_get_no_429(emulator, raw):
    emulator.configure(rate_limit=10, endpoint_rate_limit=None)
    time.sleep(1.05)  # start from an empty one-second window
    conn = raw.connect()
    statuses = []
    for _ in range(20):
        statuses.append(raw.send(conn))
        time.sleep(0.15)
    conn.close()
    assert statuses == [200] * 20


def test_the_endpoint_rate_limit_applies_per_endpoint(emulator, raw):
    emulator.configure(rate_limit=None, endpoint_rate_limit=5)
    time.sleep(1.05)
    posts = [("POST", "/v1/products", {"name": f"knob {i}"}) for i in range(10)]
    gets = [("GET", "/v1/account", None)] * 3
    statuses, elapsed = raw.burst(posts + gets)
    assert elapsed < 1.0
    post_statuses, get_statuses = statuses[:10], statuses[10:]
    assert post_statuses.count(429) >= 3, post_statuses
    assert post_statuses.count(200) >= 5, post_statuses
    assert get_statuses == [200] * 3


def test_a_rate_limited_response_has_stripes_429_shape(emulator, client):
    emulator.configure(rate_limit=1)
    with pytest.raises(stripe.RateLimitError) as ei:
        for _ in range(5):
            client.v1.accounts.retrieve_current()
    assert_stripe_error(ei.value, status=429, code="rate_limit")


def test_stripe_python_does_not_retry_a_plain_429(emulator, stripe_target, unique_id):
    retrying = stripe.StripeClient(
        stripe_target.api_key, base_addresses={"api": stripe_target.base_url}, max_network_retries=2
    )
    emulator.configure(rate_limit=1)
    for _ in range(5):
        key = unique_id("idem")
        try:
            retrying.v1.products.create(
                params={"name": "no retry"}, options={"idempotency_key": key}
            )
        except stripe.RateLimitError:
            break
    else:
        pytest.fail("no 429 with rate_limit=1")
    log = [r for r in emulator.requests() if r["idempotency_key"] == key]
    assert [r["status"] for r in log] == [429]


def _run_faults(emulator, raw, n=200, seed=7) -> list:
    emulator.configure(fault_rate=0.3, fault_kinds=["500", "503"], seed=seed)
    emulator.reset()
    conn = raw.connect()
    statuses = [raw.send(conn) for _ in range(n)]
    conn.close()
    log = _v1(emulator.requests())
    assert len(log) == n
    assert [r["status"] for r in log] == statuses
    return [r["fault"] for r in log]


def test_injected_faults_appear_at_the_configured_rate(emulator, raw):
    faults = _run_faults(emulator, raw)
    share = sum(f is not None for f in faults) / len(faults)
    assert 0.22 <= share <= 0.38, share
    assert {f for f in faults if f is not None} <= {"500", "503"}


def test_the_same_seed_gives_the_same_fault_sequence_after_reset(emulator, raw):
    first = _run_faults(emulator, raw, seed=7)
    second = _run_faults(emulator, raw, seed=7)
    assert first == second
    assert any(f is not None for f in first)
    other = _run_faults(emulator, raw, seed=8)
    assert other != first


def test_latency_is_applied_to_every_request(emulator, raw):
    emulator.configure(latency_ms=150, latency_jitter_ms=50)
    conn = raw.connect()
    conn.connect()
    timings = []
    for _ in range(10):
        t0 = time.monotonic()
        assert raw.send(conn) == 200
        timings.append(time.monotonic() - t0)
    conn.close()
    assert all(0.099 <= t <= 0.4 for t in timings), timings


def test_a_dropped_connection_is_an_api_connection_error_in_stripe_python(emulator, client):
    emulator.configure(fault_rate=1.0, fault_kinds=["drop"])
    with pytest.raises(stripe.APIConnectionError):
        client.v1.products.list(params={"limit": 1})
    emulator.configure(fault_rate=0.0)
    last = _v1(emulator.requests())[-1]
    assert last["fault"] == "drop"
    assert last["status"] is None


def test_a_stall_beyond_the_client_timeout_is_an_api_connection_error(emulator, stripe_target):
    emulator.configure(fault_rate=1.0, fault_kinds=["stall"], stall_seconds=3)
    impatient = stripe.StripeClient(
        stripe_target.api_key,
        base_addresses={"api": stripe_target.base_url},
        max_network_retries=0,
        http_client=stripe.RequestsClient(timeout=1),
    )
    t0 = time.monotonic()
    with pytest.raises(stripe.APIConnectionError):
        impatient.v1.products.list(params={"limit": 1})
    assert time.monotonic() - t0 < 2.5


def test_an_injected_500_is_an_api_error_and_stripe_client_does_not_retry_by_default(
    emulator, stripe_target
):
    default_client = stripe.StripeClient(
        stripe_target.api_key, base_addresses={"api": stripe_target.base_url}
    )
    emulator.configure(fault_rate=1.0, fault_kinds=["500"])
    emulator.reset()
    with pytest.raises(stripe.APIError) as ei:
        default_client.v1.products.list(params={"limit": 1})
    assert ei.value.http_status == 500
    emulator.configure(fault_rate=0.0)
    assert [r["status"] for r in _v1(emulator.requests())] == [500]


def test_an_injected_429_burst_looks_like_a_rate_limit(emulator, client):
    emulator.configure(fault_rate=1.0, fault_kinds=["429_burst"], burst_length=5)
    with pytest.raises(stripe.RateLimitError) as ei:
        client.v1.products.list(params={"limit": 1})
    assert_stripe_error(ei.value, status=429, code="rate_limit")
