"""Idempotency: replay, mismatch, keys not saved on 429, 409 while in flight."""

from __future__ import annotations

import threading
import time

import pytest
import stripe

from ._helpers import assert_stripe_error


def test_the_same_key_with_the_same_parameters_replays_the_first_response(make_product, unique_id):
    key = unique_id("idem")
    pid = unique_id("prod")
    first = make_product(id=pid, name="Idempotent", options={"idempotency_key": key})
    second = make_product(id=pid, name="Idempotent", options={"idempotency_key": key})
    assert second.id == first.id == pid
    assert second.to_dict() == first.to_dict()
    assert second.last_response.code == first.last_response.code == 200
    assert second.last_response.headers.get("Idempotent-Replayed") == "true"
    assert first.last_response.headers.get("Idempotent-Replayed") in (None, "false")
    assert second.last_response.request_id.startswith("req_")


def test_the_same_key_with_different_parameters_is_an_idempotency_error(
    client, make_product, unique_id
):
    key = unique_id("idem")
    pid = unique_id("prod")
    make_product(id=pid, name="Original", options={"idempotency_key": key})
    with pytest.raises(stripe.IdempotencyError) as ei:
        make_product(id=pid, name="Different", options={"idempotency_key": key})
    assert_stripe_error(ei.value, status=400, type="idempotency_error")
    assert client.v1.products.retrieve(pid).name == "Original"


def test_an_idempotency_key_of_255_characters_is_accepted_and_256_is_rejected(
    make_product, unique_id
):
    base = unique_id("idem") + "_"
    made = make_product(
        name="Long key", options={"idempotency_key": base + "x" * (255 - len(base))}
    )
    assert made.last_response.code == 200
    with pytest.raises(stripe.StripeError) as ei:
        make_product(
            name="Too long key", options={"idempotency_key": base + "y" * (256 - len(base))}
        )
    assert ei.value.http_status == 400


def test_stripe_python_sends_a_fresh_key_per_call_so_identical_creates_make_two_objects(
    make_product,
):
    """Random per-call keys don't de-duplicate reruns; deterministic ids must."""
    a = make_product(id=None, name="No custom id")
    b = make_product(id=None, name="No custom id")
    assert a.id != b.id
    assert a.last_response.headers.get("Idempotent-Replayed") in (None, "false")
    assert b.last_response.headers.get("Idempotent-Replayed") in (None, "false")


@pytest.mark.emulator_only
def test_a_429_is_not_saved_so_retrying_its_key_executes(client, emulator, make_product, unique_id):
    emulator.configure(rate_limit=1)
    pid = unique_id("prod")
    for _ in range(5):
        key = unique_id("idem")
        try:
            client.v1.accounts.retrieve_current()  # spends this second's only token
        except stripe.RateLimitError:
            pass
        try:
            make_product(id=pid, name="After 429", options={"idempotency_key": key})
        except stripe.RateLimitError as exc:
            assert_stripe_error(exc, status=429, code="rate_limit")
            break
        pid = unique_id("prod")  # that one executed: start over with fresh id and key
    else:
        pytest.fail("could not provoke a 429 with rate_limit=1")
    time.sleep(1.1)  # let the 1 req/s window refill
    retried = make_product(id=pid, name="After 429", options={"idempotency_key": key})
    assert retried.id == pid
    assert retried.last_response.code == 200
    assert retried.last_response.headers.get("Idempotent-Replayed") in (None, "false")
    log = [r for r in emulator.requests() if r["idempotency_key"] == key]
    assert [(r["status"], r["replayed"]) for r in log] == [(429, False), (200, False)]


def _concurrent_posts(raw_http, form, key, n=2):
    barrier = threading.Barrier(n)
    results = [None] * n

    def go(i):
        barrier.wait()
        results[i] = raw_http("POST", "/v1/products", form=form, headers={"Idempotency-Key": key})

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_a_request_still_in_flight_with_the_same_key_gets_409(
    request, stripe_target, raw_http, created, unique_id, run_tag
):
    """Two concurrent POSTs with one key: exactly one executes.

    Emulator: with 800 ms of latency the second request arrives while the first is in
    flight, so the answer must be one 200 and one 409. Real Stripe: the network decides
    whether the second request overlaps the first, so a pair is either 200 + 409 or
    200 + a replayed 200 of the same object (never two executions); we try up to 5 fresh
    keys and stop at the first 409, without requiring one.
    """
    if stripe_target.is_emulator:
        control = request.getfixturevalue("emulator")
        control.configure(latency_ms=800, latency_jitter_ms=0)
    attempts = 1 if stripe_target.is_emulator else 5
    saw_409 = False
    for _ in range(attempts):
        pid, key = unique_id("prod"), unique_id("idem")
        form = {"id": pid, "name": "In flight", "metadata[contract_run]": run_tag}
        results = _concurrent_posts(raw_http, form, key)
        created.product(pid)
        statuses = sorted(r.status for r in results)
        for r in results:
            assert r.headers.get("Request-Id", "").startswith("req_")
        if statuses == [200, 409]:
            saw_409 = True
            conflict = next(r for r in results if r.status == 409)
            assert isinstance(conflict.body.get("error"), dict), conflict.body
            ok = next(r for r in results if r.status == 200)
            assert ok.body["id"] == pid
            assert ok.headers.get("Idempotent-Replayed") in (None, "false")
            # Retrying the key after the first finished replays its result.
            again = raw_http("POST", "/v1/products", form=form, headers={"Idempotency-Key": key})
            assert again.status == 200
            assert again.headers.get("Idempotent-Replayed") == "true"
            assert again.body["id"] == pid
            break
        assert statuses == [200, 200], [r.body for r in results]
        replayed = [r.headers.get("Idempotent-Replayed") == "true" for r in results]
        assert sorted(replayed) == [False, True], "both requests executed"
        assert results[0].body["id"] == results[1].body["id"] == pid
    if stripe_target.is_emulator:
        assert saw_409
        log = [r for r in control.requests() if r["idempotency_key"] == key]
        assert sorted((r["status"], bool(r["replayed"])) for r in log) == [
            (200, False),
            (200, True),
            (409, False),
        ]
