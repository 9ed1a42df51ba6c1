from dataclasses import replace

from stripe_sync.core.checkpoints import Checkpoint
from stripe_sync.core.identity import PRODUCT_FIELDS, DesiredProduct
from stripe_sync.core.planner import (
    ActionKind,
    PlanOptions,
    SyncState,
    plan_batch,
    plan_row,
)

HAT = DesiredProduct("42", "Hat", None, (), True, "eur", 1250)
SYNCED = SyncState("cms_42", "price_1", "synced", HAT.sync_hash)
CHECKPOINT = Checkpoint.of(HAT, "price_1")


def plan(desired, state=SYNCED, checkpoint=CHECKPOINT, **options):
    return plan_row("42", desired, (), state, checkpoint, PlanOptions(**options))


def test_an_invalid_row_is_never_sent():
    action = plan_row("42", None, ("name_missing: no name",), SyncState())
    assert action.kind is ActionKind.INVALID and action.reasons == ("name_missing: no name",)
    assert action.change == "invalid" and not action.writes


def test_a_row_never_synced_is_created():
    action = plan(HAT, SyncState(), None)
    assert action.kind is ActionKind.CREATE and action.change == "create" and action.writes


def test_a_row_synced_with_the_same_hash_and_a_checkpoint_is_unchanged():
    action = plan(HAT)
    assert action.kind is ActionKind.UNCHANGED and not action.writes


def test_a_renamed_row_is_updated_with_only_its_name_and_the_diff_shows_old_and_new():
    action = plan(replace(HAT, name="Cap"))
    assert action.kind is ActionKind.UPDATE and action.fields == ("name",)
    assert action.change == "update"
    assert action.diff() == ["name: 'Hat' -> 'Cap'"]


def test_a_new_amount_or_currency_is_a_new_price():
    for desired in (replace(HAT, unit_amount=990), replace(HAT, currency="usd")):
        action = plan(desired)
        assert action.fields == ("price",) and action.reprice and action.change == "new_price"
    assert plan(replace(HAT, unit_amount=990)).diff() == ["price: '12.50 EUR' -> '9.90 EUR'"]


def test_deactivating_a_row_archives_it_and_reactivating_unarchives_it():
    assert plan(replace(HAT, active=False)).change == "archive"
    inactive = replace(HAT, active=False)
    state = SyncState("cms_42", "price_1", "synced", inactive.sync_hash)
    action = plan(HAT, state, Checkpoint.of(inactive, "price_1"))
    assert action.fields == ("active",) and action.change == "unarchive"


def test_a_row_without_a_checkpoint_is_reconciled_against_stripe():
    assert plan(HAT, checkpoint=None).kind is ActionKind.RECONCILE


def test_a_checkpoint_that_disagrees_with_the_catalog_columns_is_not_trusted():
    edited = SyncState("cms_42", "price_1", "synced", replace(HAT, name="Edited").sync_hash)
    assert plan(HAT, edited).kind is ActionKind.RECONCILE


def test_no_checkpoint_mode_reconciles_every_synced_row():
    assert plan(HAT, use_checkpoints=False).kind is ActionKind.RECONCILE


def test_a_row_that_failed_last_time_is_retried_by_reconciling():
    action = plan(HAT, SyncState("cms_42", "price_1", "failed", HAT.sync_hash))
    assert action.kind is ActionKind.RECONCILE and action.change == "retry"


def test_a_forced_resync_reconciles_and_resends_every_field():
    action = plan(HAT, force_resync=True)
    assert action.kind is ActionKind.RECONCILE and action.fields == PRODUCT_FIELDS


def test_an_unreadable_stored_hash_is_reconciled():
    state = SyncState("cms_42", "price_1", "synced", "legacy")
    assert plan(HAT, state, replace(CHECKPOINT, sync_hash="legacy")).kind is ActionKind.RECONCILE


def test_a_row_deleted_from_the_catalog_is_archived_in_mirror_mode_and_only_reported_otherwise():
    gone = {"7": Checkpoint.of(replace(HAT, cms_id="7"), "price_7")}
    mirrored = plan_batch([], gone, PlanOptions(mirror=True))
    assert [(a.cms_id, a.kind, a.change, a.writes) for a in mirrored] == [
        ("7", ActionKind.ARCHIVE, "remove", True)
    ]
    assert mirrored[0].state.stripe_product_id == "cms_7"
    kept = plan_batch([], gone, PlanOptions(mirror=False))
    assert [(a.kind, a.change, a.writes) for a in kept] == [
        (ActionKind.ORPHANED, "removed_kept", False)
    ]


def test_a_row_archived_after_its_deletion_is_not_planned_again():
    archived = {"7": replace(Checkpoint.of(replace(HAT, cms_id="7"), "p"), removed=True)}
    assert plan_batch([], archived, PlanOptions(mirror=True)) == []
