"""Catalogs that grow and shrink between migrations, with the id types real CMSs use: every
row stays in the batch it was first given, so nothing synced is ever written again, counted
twice or taken for deleted (default settings and topology: one PostgreSQL for the catalog,
the state and the throttle)."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from decimal import Decimal

import pytest

from stripe_sync.core.identity import stripe_product_id
from stripe_sync_tests.conftest import stripe_state, write_requests

NO_CHANGE = dict.fromkeys(
    ("adopted", "updated", "archived", "orphaned", "invalid", "held", "failed"), 0
)


def new_rows(ids: list[str]) -> list[dict]:
    return [
        {"id": id_, "name": f"Product {id_}", "price": Decimal("9.90"), "currency": "eur"}
        for id_ in ids
    ]


def writes_since(emulator, mark: int) -> list[dict]:
    """The Stripe writes after the first `mark` requests of the emulator's log."""
    return write_requests(emulator.requests()[mark:])


def by_route(writes: list[dict]) -> Counter:
    """Writes counted by route, a product's own path as `/v1/products/{id}`."""
    return Counter(
        (entry["method"], "/v1/products/{id}" if entry["path"].count("/") > 2 else entry["path"])
        for entry in writes
    )


def test_a_uuid_catalog_grown_twice_then_shrunk_in_mirror_mode_writes_only_what_changed(
    products_table, pipeline_env, emulator
):
    rng = random.Random(27)

    def uuids(count: int) -> list[str]:  # gen_random_uuid(): anywhere among the old ones
        return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]

    table = products_table(new_rows(uuids(300)), id_type="uuid")
    pipeline_env.use_catalog(table)
    pipeline_env.set(STRIPE_SYNC_BATCH_SIZE="100", STRIPE_SYNC_MIRROR="true")
    first = pipeline_env.migrate()
    assert first.succeeded, first.report_markdown
    assert first.report["counts"] == {**NO_CHANGE, "created": 300, "unchanged": 0}

    for grown in (1, 2):
        table.insert(new_rows(uuids(150)))
        mark = len(emulator.requests())

        result = pipeline_env.migrate()

        assert result.succeeded, result.report_markdown
        assert result.report["counts"] == {
            **NO_CHANGE,
            "created": 150,
            "unchanged": 150 + 150 * grown,
        }
        assert by_route(writes_since(emulator, mark)) == {("POST", "/v1/products"): 150}

    deleted = rng.sample(sorted(map(str, table.rows())), 10)
    table.delete(deleted)
    mark = len(emulator.requests())

    shrunk = pipeline_env.migrate()

    assert shrunk.succeeded, shrunk.report_markdown
    assert shrunk.report["counts"] == {**NO_CHANGE, "created": 0, "archived": 10, "unchanged": 590}
    writes = writes_since(emulator, mark)
    assert by_route(writes) == {("POST", "/v1/products/{id}"): 10}
    assert {entry["path"].rsplit("/", 1)[1] for entry in writes} == {
        stripe_product_id(cms_id) for cms_id in deleted
    }
    products, _prices = stripe_state(emulator.base_url)
    assert len(products) == 600
    assert sum(product["active"] for product in products) == 590


@pytest.mark.parametrize("mirror", [False, True], ids=["default", "mirror"])
def test_new_ids_among_old_ones_never_make_a_synced_row_look_deleted(
    products_table, pipeline_env, emulator, mirror
):
    table = products_table(new_rows([f"sku-{n:04d}" for n in range(0, 210, 7)]))
    pipeline_env.use_catalog(table)
    pipeline_env.set(STRIPE_SYNC_BATCH_SIZE="10", STRIPE_SYNC_MIRROR=str(mirror).lower())
    assert pipeline_env.migrate().succeeded
    # Ids that sort before, among and after the old ones.
    table.insert(new_rows(["sku-0000a", "sku-0100x", "zzz-1", "aaa-1"]))
    mark = len(emulator.requests())

    result = pipeline_env.migrate()

    assert result.succeeded, result.report_markdown
    assert result.report["counts"] == {**NO_CHANGE, "created": 4, "unchanged": 30}
    assert by_route(writes_since(emulator, mark)) == {("POST", "/v1/products"): 4}
