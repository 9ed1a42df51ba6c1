from datetime import UTC, datetime, timedelta

import pytest

from stripe_sync.core.automation import (
    RetryPolicy,
    decide_retries,
    needing_sync,
    retry_states_from_json,
    retry_states_to_json,
    runs_of,
)
from stripe_sync.core.identity import DesiredProduct
from stripe_sync.core.validation import ValidationRules

RULES = ValidationRules()
HAT = DesiredProduct("1", "Hat", None, (), True, "eur", 1250)


def row(id_="1", name="Hat", price="12.50", updated_at="2026-11-01T09:30:00+00:00", **state):
    """A catalog row as read_rows makes it: never synced unless `state` says otherwise."""
    return {
        "id": id_,
        "name": name,
        "description": None,
        "price": price,
        "currency": "eur",
        "images": None,
        "active": True,
        "updated_at": updated_at,
        "stripe_product_id": None,
        "stripe_price_id": None,
        "sync_status": None,
        "sync_error": None,
        "synced_at": None,
        "sync_hash": None,
        **state,
    }


SYNCED = {
    "stripe_product_id": "cms_1",
    "stripe_price_id": "price_1",
    "sync_status": "synced",
    "sync_hash": HAT.sync_hash,
}


def test_a_row_never_synced_needs_a_sync():
    assert list(needing_sync([row()], RULES)) == ["1"]


@pytest.mark.parametrize("product_id", ["cms_1", "prod_adopted"], ids=["own", "adopted"])
def test_a_synced_row_touched_without_a_change_needs_none(product_id):
    touched = row(
        updated_at="2026-11-02T10:00:00+00:00", **SYNCED | {"stripe_product_id": product_id}
    )
    assert needing_sync([touched], RULES) == {}


def test_a_row_another_tool_synced_needs_a_sync_to_be_adopted():
    other = {
        "stripe_product_id": "prod_old",
        "stripe_price_id": "price_old",
        "sync_status": "synced",
    }
    assert list(needing_sync([row(**other)], RULES)) == ["1"]


def test_a_synced_row_with_new_content_needs_a_sync():
    assert list(needing_sync([row(name="Cap", **SYNCED)], RULES)) == ["1"]
    assert list(needing_sync([row(price="13.00", **SYNCED)], RULES)) == ["1"]


def test_a_failed_or_archived_row_needs_a_sync_even_with_the_same_content():
    for status in ("failed", "archived"):
        assert list(needing_sync([row(**{**SYNCED, "sync_status": status})], RULES)) == ["1"]


def test_an_invalid_row_needs_a_sync_until_it_is_quarantined_with_its_reasons():
    [fingerprint] = needing_sync([row(price=None)], RULES).values()
    reasons = fingerprint.split(" invalid: ", 1)[1]
    assert reasons.startswith("price_missing: ")
    other = row(price=None, sync_status="invalid", sync_error="price_missing: other")
    assert list(needing_sync([other], RULES)) == ["1"]
    quarantined = row(price=None, sync_status="invalid", sync_error=reasons)
    assert needing_sync([quarantined], RULES) == {}


def test_a_row_without_an_id_is_judged_like_any_other_instead_of_stopping_the_sensor():
    needed = needing_sync([row(id_=None), row()], RULES)
    assert set(needed) == {"", "1"}
    assert "id_missing" in needed[""]


def test_the_fingerprint_differs_for_another_edit_or_another_time_and_not_otherwise():
    first = needing_sync([row(name="Cap", **SYNCED)], RULES)
    assert needing_sync([row(name="Cap", **SYNCED)], RULES) == first
    assert needing_sync([row(name="Cup", **SYNCED)], RULES) != first
    later = row(name="Cap", updated_at="2026-11-03T00:00:00+00:00", **SYNCED)
    assert needing_sync([later], RULES) != first


def test_runs_group_neighbouring_batches_up_to_the_limit():
    keys = [f"b{i}" for i in range(10)]
    affected = ["b0", "b1", "b2", "b3", "b4", "b6", "b9"]
    assert runs_of(keys, affected, per_run=3) == [
        ["b0", "b1", "b2"],
        ["b3", "b4"],
        ["b6"],
        ["b9"],
    ]
    assert runs_of(keys, [], per_run=3) == []


T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy(base=timedelta(minutes=5), max_attempts=3)


def test_a_failed_batch_is_retried_with_doubling_waits_then_given_up_on():
    def tick(minutes, failed=("b1",), in_progress=()):
        nonlocal states
        decision = decide_retries(
            states, failed, in_progress, T0 + timedelta(minutes=minutes), POLICY
        )
        states = retry_states_from_json(retry_states_to_json(decision.states))  # as a cursor
        return decision.retry, decision.gave_up

    states = {}
    assert tick(0) == ([], [])  # seen failed: wait 5 minutes
    assert tick(4) == ([], [])
    assert tick(5) == (["b1"], [])  # retry 1
    assert tick(6, failed=(), in_progress=("b1",)) == ([], [])
    assert tick(8) == ([], [])  # retry 1 failed, seen at 8: wait 10 minutes
    assert tick(17) == ([], [])
    assert tick(18) == (["b1"], [])  # retry 2
    assert tick(20) == ([], [])  # failed again at 20: wait 20 minutes
    assert tick(40) == (["b1"], [])  # retry 3
    assert tick(41) == ([], ["b1"])  # failed again: no retry left
    assert states["b1"].attempts == 3 and states["b1"].gave_up
    assert tick(500) == ([], [])  # given up for good: said once
    assert states["b1"].first_failed_at == T0.isoformat()


def test_a_batch_that_succeeds_is_forgotten_and_a_later_failure_starts_over():
    states = {}
    decision = decide_retries(states, ["b1", "b2"], [], T0, POLICY)
    decision = decide_retries(decision.states, ["b1", "b2"], [], T0 + timedelta(minutes=5), POLICY)
    assert decision.retry == ["b1", "b2"]
    later = T0 + timedelta(minutes=30)
    decision = decide_retries(decision.states, ["b2"], [], later, POLICY)
    assert decision.recovered == ["b1"]
    assert set(decision.states) == {"b2"}
    decision = decide_retries(decision.states, ["b1", "b2"], [], later, POLICY)
    assert decision.states["b1"].attempts == 0
    assert decision.states["b1"].first_failed_at == later.isoformat()


def test_with_no_attempts_allowed_a_failed_batch_is_given_up_on_at_once():
    decision = decide_retries({}, ["b1"], [], T0, RetryPolicy(timedelta(0), max_attempts=0))
    assert (decision.retry, decision.gave_up) == ([], ["b1"])
