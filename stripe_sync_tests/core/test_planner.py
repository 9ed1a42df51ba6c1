from stripe_sync.core.identity import DesiredProduct
from stripe_sync.core.planner import ActionKind, SyncState, plan_row

HAT = DesiredProduct("42", "Hat", None, (), True, "eur", 1250)
SYNCED = SyncState("cms_42", "price_1", "synced", HAT.sync_hash)


def test_an_invalid_row_is_never_sent():
    action = plan_row("42", None, ("name_missing: no name",), SyncState())
    assert action.kind is ActionKind.INVALID and action.reasons == ("name_missing: no name",)


def test_a_row_never_synced_is_created():
    assert plan_row("42", HAT, (), SyncState()).kind is ActionKind.CREATE


def test_a_row_synced_with_the_same_hash_is_unchanged():
    assert plan_row("42", HAT, (), SYNCED).kind is ActionKind.UNCHANGED


def test_a_changed_row_is_updated_with_only_its_changed_fields():
    action = plan_row("42", DesiredProduct("42", "Cap", None, (), True, "eur", 990), (), SYNCED)
    assert action.kind is ActionKind.UPDATE
    assert action.fields == ("name", "price") and action.reprice


def test_a_row_that_failed_last_time_is_reconciled_against_stripe():
    state = SyncState("cms_42", "price_1", "failed", HAT.sync_hash)
    assert plan_row("42", HAT, (), state).kind is ActionKind.RECONCILE


def test_forcing_reconciles_even_an_unchanged_row():
    assert plan_row("42", HAT, (), SYNCED, force=True).kind is ActionKind.RECONCILE


def test_an_unreadable_stored_hash_is_reconciled():
    state = SyncState("cms_42", "price_1", "synced", "legacy")
    assert plan_row("42", HAT, (), state).kind is ActionKind.RECONCILE
