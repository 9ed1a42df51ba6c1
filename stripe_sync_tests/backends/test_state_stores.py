"""Every state store keeps what the pipeline knows between runs, and writes a batch's state
with its write-back as one transaction where they share a database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from stripe_sync.core.backups import Backup
from stripe_sync.core.checkpoints import Checkpoint
from stripe_sync.core.contract import WriteBack
from stripe_sync.core.errors import CatalogError
from stripe_sync.core.ledger import PRICES, PRODUCTS, final_record
from stripe_sync_tests.backends.conftest import SHARED_DATABASE

SYNCED_AT = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)


def synced(cms_id: str, n: int = 1) -> WriteBack:
    return WriteBack(cms_id, f"cms_{cms_id}", f"price_{n}", "synced", None, SYNCED_AT, f"h{n}")


def checkpoint(cms_id: str, n: int = 1) -> Checkpoint:
    return Checkpoint(f"cms_{cms_id}", f"price_{n}", f"h{n}", {"name": f"Product {n}"})


def test_checkpoints_are_kept_per_batch_and_forgotten_on_request(store_case):
    state, (a, b, c, *_) = store_case.state, store_case.ids

    state.record([], {"b1": {a: checkpoint(a), b: checkpoint(b, 2)}, "b2": {c: checkpoint(c)}})
    state.forget("b1", [b])

    assert state.checkpoints("b1") == {a: checkpoint(a)}
    assert state.checkpoints("b1")[a].synced == {"name": "Product 1"}
    assert state.checkpoints("b2") == {c: checkpoint(c)}
    assert state.memberships() == {a: "b1", b: "b1", c: "b2"}
    assert state.forget_all() == 2
    assert state.checkpoints("b1") == state.checkpoints("b2") == {}


def test_a_row_is_assigned_a_batch_once_and_keeps_it(store_case):
    state, (a, b, c, d, *_) = store_case.state, store_case.ids
    state.record([synced(a)], batch_of={a: "b1"})

    state.assign({a: "b2", b: "b2", c: "b2"})
    state.assign({b: "b3"})
    state.record([synced(c)], {"b3": {c: checkpoint(c)}}, batch_of={c: "b3"})

    assert state.memberships() == {a: "b1", b: "b2", c: "b2"}
    assert state.members("b2") == sorted([b, c])
    assert state.members("b9") == []
    assert d not in state.memberships()
    never_synced = WriteBack(b, None, None, None, None, None, None)
    assert state.sync_states([b]).get(b, never_synced) == never_synced


def test_the_sync_state_of_rows_comes_back_as_written(store_case):
    state, (a, b, *_) = store_case.state, store_case.ids

    state.record([synced(a), synced(b, 2)], {"b1": {a: checkpoint(a)}}, batch_of={a: "b1", b: "b1"})
    state.write_back([WriteBack(b, None, None, "failed", "Stripe said no", SYNCED_AT, None)])

    found = state.sync_states([a, b, "not-a-row"])
    assert found[a] == synced(a)
    assert found[b] == WriteBack(b, None, None, "failed", "Stripe said no", SYNCED_AT, None)
    assert set(found) == {a, b}
    assert state.checkpoints("b1") == {a: checkpoint(a)}  # a write-back keeps the checkpoint


def test_outcomes_backups_and_frames_are_kept_per_batch(store_case):
    state = store_case.state
    frame = bytes(range(256)) * 40  # any bytes, NUL included

    state.save_outcomes(PRODUCTS, "b1", {"run_id": "r1", "seconds": 1.0, "outcomes": []})
    state.save_outcomes(PRICES, "b1", {"run_id": "r1", "seconds": 0.5, "outcomes": []})
    state.save_outcomes(PRODUCTS, "b1", {"run_id": "r2", "seconds": 2.0, "outcomes": []})
    state.save_backup(
        Backup("r2", "b1", "2026-12-01T10:00:00.000000+00:00", actions={"a": "update"})
    )
    state.save_backup(Backup("r1", "b2", "2026-12-01T09:00:00.000000+00:00"))
    state.save_frame("validated_products", "b1", frame)

    assert final_record(state, "b1")["run_id"] == "r2"  # the prices record is the older run's
    assert [(b.run_id, b.batch) for b in state.backups()] == [("r1", "b2"), ("r2", "b1")]
    assert state.backups()[1].actions == {"a": "update"}
    assert state.frame("validated_products", "b1") == frame
    assert state.frame("validated_products", "b2") is None


@pytest.mark.parametrize("store_case", SHARED_DATABASE, indirect=True)
def test_a_failed_write_back_leaves_the_state_as_it_was(store_case):
    state, a = store_case.state, store_case.ids[0]
    store_case.refuse_catalog_updates()

    with pytest.raises(CatalogError, match="the CMS refuses updates"):
        state.record([synced(a)], {"b1": {a: checkpoint(a)}}, batch_of={a: "b1"})

    assert state.sync_states([a]) == {}
    assert state.checkpoints("b1") == {}
    assert {row[2] for row in store_case.write_back_columns()} == {None}


@pytest.mark.parametrize(
    "store_case", ["postgres_own_database", "supabase_own_database"], indirect=True
)
def test_in_a_database_of_its_own_the_state_is_kept_when_the_write_back_fails(store_case):
    state, a = store_case.state, store_case.ids[0]
    store_case.refuse_catalog_updates()

    with pytest.raises(CatalogError, match="the CMS refuses updates"):
        state.record([synced(a)], {"b1": {a: checkpoint(a)}}, batch_of={a: "b1"})

    # What Stripe did is known to the next run, which writes the catalog back then.
    assert state.sync_states([a]) == {a: synced(a)}
    assert state.checkpoints("b1") == {a: checkpoint(a)}
