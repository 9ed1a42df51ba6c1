"""Rollback plans: from backups and the state now, exactly the steps that bring things back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from stripe_sync.core.backups import Backup
from stripe_sync.core.errors import ConfigError
from stripe_sync.core.rollback import (
    ARCHIVE,
    MISSING,
    RESTORE,
    plan_rollback,
    rollback_targets,
    rollback_window,
)

BATCH = "00000~a"


def price(price_id: str, amount: int = 1250, active: bool = True) -> dict:
    return {
        "id": price_id,
        "object": "price",
        "unit_amount": amount,
        "currency": "eur",
        "active": active,
    }


def product(cms_id: str, **fields: object) -> dict:
    """A product as Stripe lists it, default price expanded."""
    return {
        "id": f"cms_{cms_id}",
        "object": "product",
        "name": f"Product {cms_id}",
        "description": None,
        "images": [],
        "metadata": {"cms_id": cms_id, "managed_by": "stripe_sync", "sync_hash": "v1:before"},
        "active": True,
        "default_price": price(f"price_{cms_id}_before"),
        "updated": 1_700_000_000,
        **fields,
    }


def row(cms_id: str, **columns: object) -> dict:
    """A backup's catalog row: the write-back columns as they were."""
    return {
        "id": cms_id,
        "stripe_product_id": f"cms_{cms_id}",
        "stripe_price_id": f"price_{cms_id}_before",
        "sync_status": "synced",
        "sync_error": None,
        "synced_at": "2026-01-01T10:00:00+00:00",
        "sync_hash": "v1:before",
        **columns,
    }


def backup(
    *befores: dict,
    created: tuple[str, ...] = (),
    rows=(),
    run_id="run-a",
    taken_at="2026-01-01T12:00:00.000000+00:00",
) -> Backup:
    stripe_products = {p["id"]: p for p in befores} | {f"cms_{c}": None for c in created}
    actions = {p["metadata"]["cms_id"]: "update" for p in befores} | dict.fromkeys(
        created, "create"
    )
    return Backup(run_id, BATCH, taken_at, list(rows), stripe_products, actions)


def plan_for(backups: list[Backup], now: list[dict], rows_now: dict | None = None):
    return plan_rollback(rollback_targets(backups), {p["id"]: p for p in now}, rows_now or {})


def test_a_product_the_migration_created_is_archived_while_it_is_active():
    plan = plan_for([backup(created=("new",))], [product("new")])

    [step] = plan.product_steps
    assert (step.kind, step.update) == (ARCHIVE, {"active": False})
    assert (step.reactivate_prices, step.archive_prices) == ((), ())


def test_a_created_product_already_archived_or_gone_needs_nothing():
    already = plan_for([backup(created=("new",))], [product("new", active=False)])
    gone = plan_for([backup(created=("new",))], [])

    assert already.empty and already.unchanged == 1
    assert gone.empty and gone.unchanged == 1


def test_a_renamed_product_gets_one_update_with_only_its_old_name():
    before = product("a")
    renamed = product("a", name="Renamed")

    [step] = plan_for([backup(before)], [renamed]).product_steps

    assert (step.kind, step.update) == (RESTORE, {"name": "Product a"})


def test_description_and_images_the_migration_added_are_unset_and_removed_ones_come_back():
    added = plan_for(
        [backup(product("a"))],
        [product("a", description="New text", images=["https://img.example.com/a.png"])],
    )
    removed = plan_for(
        [backup(product("a", description="Old text", images=["https://img.example.com/a.png"]))],
        [product("a")],
    )

    assert added.product_steps[0].update == {"description": "", "images": ""}
    assert removed.product_steps[0].update == {
        "description": "Old text",
        "images": ["https://img.example.com/a.png"],
    }


def test_metadata_gets_its_old_values_back_and_keys_the_migration_added_are_unset():
    before = product("a")
    now = product(
        "a", metadata={**before["metadata"], "sync_hash": "v1:after", "category": "shoes"}
    )

    [step] = plan_for([backup(before)], [now]).product_steps

    assert step.update == {"metadata": {"sync_hash": "v1:before", "category": ""}}


def test_a_deactivated_product_is_reactivated():
    [step] = plan_for([backup(product("a"))], [product("a", active=False)]).product_steps

    assert step.update == {"active": True}


def test_a_repriced_product_gets_its_old_default_price_back_and_the_new_one_is_archived():
    before = product("a")
    now = product("a", default_price=price("price_a_after", amount=1500))

    [step] = plan_for([backup(before)], [now]).product_steps

    assert step.update == {"default_price": "price_a_before"}
    assert (step.reactivate_prices, step.archive_prices) == (
        ("price_a_before",),
        ("price_a_after",),
    )
    assert step.restores_price


def test_a_product_without_a_default_price_before_loses_the_one_the_migration_gave_it():
    before = product("a", default_price=None)

    [step] = plan_for([backup(before)], [product("a")]).product_steps

    assert step.update == {"default_price": ""}  # "" unsets it
    assert (step.reactivate_prices, step.archive_prices) == ((), ("price_a_before",))


def test_every_change_of_a_product_is_one_update():
    before = product("a")
    now = product(
        "a",
        name="Renamed",
        active=False,
        metadata={**before["metadata"], "sync_hash": "v1:after"},
        default_price=price("price_a_after", amount=1500),
    )

    [step] = plan_for([backup(before)], [now]).product_steps

    assert step.update == {
        "name": "Product a",
        "metadata": {"sync_hash": "v1:before"},
        "active": True,
        "default_price": "price_a_before",
    }


def test_a_product_as_it_was_before_is_unchanged_and_makes_the_plan_empty():
    plan = plan_for([backup(product("a"), product("b"))], [product("a"), product("b")])

    assert plan.empty
    assert plan.unchanged == 2


def test_a_product_that_existed_but_is_gone_from_stripe_is_a_missing_step():
    [step] = plan_for([backup(product("a"))], []).product_steps

    assert step.kind == MISSING


def test_the_oldest_backup_of_a_product_is_its_target():
    first = backup(product("a", name="Original"), run_id="run-a")
    second = backup(
        product("a", name="After run a"),
        run_id="run-b",
        taken_at="2026-01-02T12:00:00.000000+00:00",
    )

    [step] = plan_for([first, second], [product("a", name="After run b")]).product_steps

    assert step.update == {"name": "Original"}


def test_a_product_created_by_an_earlier_run_of_the_window_is_archived_whatever_later_runs_saw():
    first = backup(created=("new",), run_id="run-a")
    second = backup(
        product("new", name="Made by run a"),
        run_id="run-b",
        taken_at="2026-01-02T12:00:00.000000+00:00",
    )

    [step] = plan_for([first, second], [product("new", name="Renamed by run b")]).product_steps

    assert step.kind == ARCHIVE


def test_a_catalog_row_is_reset_when_its_write_back_columns_differ():
    now = {
        **row("a"),
        "stripe_price_id": "price_a_after",
        "sync_hash": "v1:after",
        "synced_at": datetime(2026, 1, 3, tzinfo=UTC),
    }

    [reset] = plan_for([backup(rows=[row("a")])], [], {"a": now}).row_resets

    assert reset.changed == ("stripe_price_id", "synced_at", "sync_hash")
    write_back = reset.write_back()
    assert (write_back.stripe_price_id, write_back.sync_hash) == ("price_a_before", "v1:before")
    assert write_back.synced_at == datetime(2026, 1, 1, 10, tzinfo=UTC)


def test_a_row_that_was_never_synced_is_reset_to_no_sync_state_at_all():
    never = row(
        "a",
        stripe_product_id=None,
        stripe_price_id=None,
        sync_status=None,
        synced_at=None,
        sync_hash=None,
    )

    [reset] = plan_for([backup(rows=[never])], [], {"a": row("a")}).row_resets

    write_back = reset.write_back()
    assert write_back.columns() == dict.fromkeys(write_back.columns())


def test_a_catalog_row_as_it_was_is_not_reset_whatever_form_its_time_takes():
    # The backup holds ISO text; PostgreSQL gives a datetime, Supabase text in its own offset.
    as_datetime = {**row("a"), "synced_at": datetime(2026, 1, 1, 10, tzinfo=UTC)}
    as_other_offset = {**row("b"), "synced_at": "2026-01-01T11:00:00+01:00"}

    plan = plan_for(
        [backup(rows=[row("a"), row("b")])], [], {"a": as_datetime, "b": as_other_offset}
    )

    assert plan.empty


def test_a_row_no_longer_in_the_catalog_is_not_reset():
    plan = plan_for([backup(rows=[row("a")])], [], {})

    assert plan.row_resets == []


def test_the_rows_rolled_back_are_listed_by_batch_for_their_checkpoints():
    plan = plan_for(
        [backup(product("a"), product("b"), rows=[row("c")])],
        [product("a", name="Renamed"), product("b")],
        {"c": row("c", sync_hash="v1:after")},
    )

    assert plan.rows_by_batch() == {BATCH: {"a", "c"}}


def test_a_dry_run_report_counts_what_would_be_done_and_lists_every_step():
    plan = plan_for(
        [backup(product("a"), product("b"), created=("new",), rows=[row("a")])],
        [
            product("a", default_price=price("price_a_after", 1500)),
            product("b"),
            product("new"),
        ],
        {"a": row("a", stripe_price_id="price_a_after")},
    )

    report = plan.report()

    assert report.counts == {
        "archived": 1,
        "restored": 1,
        "prices_restored": 1,
        "catalog_rows_reset": 1,
        "unchanged": 1,
        "failed": 0,
    }
    markdown = report.to_markdown()
    assert markdown.startswith("# Rollback plan (dry run: nothing written)")
    assert (
        "| a | cms_a | default price back to price_a_before; archive price_a_after | planned |"
        in markdown
    )
    assert "| new | cms_new | archive (created by the migration) | planned |" in markdown
    assert "| a | catalog | restore stripe_price_id | planned |" in markdown


def test_without_write_back_columns_in_the_catalog_a_dry_run_plans_the_sync_state_alone():
    plan = plan_rollback(
        rollback_targets([backup(rows=[row("a")])]),
        {},
        {"a": row("a", sync_hash="v1:after")},
        catalog_columns=False,
    )

    markdown = plan.report().to_markdown()

    assert "| a | sync state | restore sync_hash | planned |" in markdown
    assert "| sync states reset |" in markdown
    assert "| catalog |" not in markdown and "catalog rows" not in markdown


def test_an_empty_plan_says_there_is_nothing_to_roll_back():
    report = plan_for([backup(product("a"))], [product("a")]).report()

    assert "Nothing to roll back." in report.to_markdown()


def test_the_same_write_from_the_same_state_has_the_same_key_and_from_another_state_another():
    [step] = plan_for([backup(product("a"))], [product("a", name="Renamed")]).product_steps
    [same] = plan_for([backup(product("a"))], [product("a", name="Renamed")]).product_steps
    [later] = plan_for(
        [backup(product("a"))], [product("a", name="Renamed", updated=1_800_000_000)]
    ).product_steps

    key = step.key("update-product", "cms_a", step.update)
    assert key == same.key("update-product", "cms_a", same.update)
    assert key != later.key("update-product", "cms_a", later.update)


def test_an_unknown_since_is_a_configuration_error_in_one_sentence(sqlite_state):
    sqlite_state.save_backup(backup(product("a")))

    with pytest.raises(ConfigError, match=r"^--since 'yesterday' is neither .*\.$"):
        rollback_window(sqlite_state, "yesterday")
    assert [b.run_id for b in rollback_window(sqlite_state, "run-a")] == ["run-a"]
