from dataclasses import replace

import pytest

from stripe_sync.core.checkpoints import Checkpoint
from stripe_sync.core.identity import PRODUCT_FIELDS, DesiredProduct
from stripe_sync.core.planner import (
    ActionKind,
    PlanOptions,
    SyncState,
    needs_listing,
    plan_batch,
    plan_row,
    products_by_metadata,
    settle_adoptions,
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


# --- which Stripe product a row is ---------------------------------------------------------

KEYED = PlanOptions(adopt_metadata_key="supabase_id")


def product(product_id, **metadata):
    return {
        "id": product_id,
        "name": "Hat",
        "description": None,
        "images": [],
        "active": True,
        "metadata": metadata,
    }


@pytest.mark.parametrize(
    ("state", "by_metadata", "kind", "product_id", "found_by"),
    [
        # The pipeline's own id, stored or not, is no adoption.
        (SyncState(), (), ActionKind.CREATE, "cms_42", ""),
        (SyncState("cms_42"), (), ActionKind.RECONCILE, "cms_42", ""),
        # Another tool's id held by the row, with or without a metadata match that agrees.
        (
            SyncState("prod_old", "price_old", "synced"),
            (),
            ActionKind.ADOPT,
            "prod_old",
            "stripe_product_id",
        ),
        (SyncState("prod_old"), ("prod_old",), ActionKind.ADOPT, "prod_old", "stripe_product_id"),
        # A column of the catalog's own holds it (the write-back columns hold nothing).
        (
            SyncState(held_product_id="prod_col"),
            (),
            ActionKind.ADOPT,
            "prod_col",
            "catalog.columns.stripe_product_id",
        ),
        # Found by the metadata key alone.
        (SyncState(), ("prod_hand",), ActionKind.ADOPT, "prod_hand", "metadata.supabase_id"),
        (SyncState(), ("cms_42",), ActionKind.CREATE, "cms_42", ""),
    ],
    ids=[
        "new",
        "own-stored",
        "stored",
        "stored-and-metadata",
        "own-column",
        "metadata",
        "own-by-metadata",
    ],
)
def test_a_row_without_a_checkpoint_is_the_product_it_holds_then_its_metadata_match_then_its_own(
    state, by_metadata, kind, product_id, found_by
):
    action = plan_row("42", HAT, (), state, None, KEYED, by_metadata)
    assert (action.kind, action.desired.stripe_id, action.found_by) == (kind, product_id, found_by)


def test_a_checkpoint_names_the_product_whatever_the_row_or_its_metadata_say():
    adopted = HAT.known_as("prod_old")
    checkpoint = Checkpoint.of(adopted, "price_1")
    state = SyncState("prod_old", "price_1", "synced", HAT.sync_hash)
    action = plan_row("42", HAT, (), state, checkpoint, KEYED, ("prod_other",))
    assert action.kind is ActionKind.UNCHANGED and action.desired.stripe_id == "prod_old"
    assert Checkpoint.of(action.desired, "price_1") == checkpoint


@pytest.mark.parametrize(
    ("state", "by_metadata", "named"),
    [
        (SyncState(), ("prod_a", "prod_b"), ("prod_a", "prod_b")),
        (SyncState("prod_old"), ("prod_hand",), ("prod_old", "prod_hand")),
        (SyncState("cms_42"), ("prod_hand",), ("cms_42", "prod_hand")),
    ],
    ids=["two-metadata-matches", "stored-and-metadata-disagree", "own-and-metadata-disagree"],
)
def test_two_products_claiming_a_row_hold_it_and_name_both(state, by_metadata, named):
    action = plan_row("42", HAT, (), state, None, KEYED, by_metadata)
    assert action.kind is ActionKind.HELD and not action.writes and action.change == "held"
    assert action.reasons[0].startswith("adopt_ambiguous: ")
    assert all(product_id in action.reasons[0] for product_id in named)


def test_the_account_is_listed_only_with_a_key_and_a_row_without_a_checkpoint():
    assert needs_listing(["42", "43"], {"42": CHECKPOINT}, KEYED)
    assert not needs_listing(["42"], {"42": CHECKPOINT}, KEYED)
    assert not needs_listing(["43"], {}, PlanOptions())


def test_products_are_indexed_by_the_catalog_id_their_metadata_key_holds():
    products = [
        product("prod_a", supabase_id="42"),
        product("prod_b", supabase_id="42"),
        product("prod_c"),
    ]
    assert products_by_metadata(products, "supabase_id") == {"42": ["prod_a", "prod_b"]}


def adoption(product_id="prod_old", cms_id="42"):
    desired = replace(HAT, cms_id=cms_id).known_as(product_id)
    return plan_row(cms_id, desired, (), SyncState(product_id), None, KEYED)


def test_a_product_found_in_stripe_is_adopted_with_what_will_change():
    found = product("prod_old", supabase_id="42") | {
        "name": "Old hat",
        "default_price": {
            "id": "price_old",
            "currency": "eur",
            "unit_amount": 1250,
            "active": True,
        },
    }
    [action] = settle_adoptions([adoption()], {"prod_old": found})
    assert action.kind is ActionKind.ADOPT and action.adopted == found and action.change == "adopt"
    assert action.diff() == [
        "prod_old: found by stripe_product_id",
        "name: 'Old hat' -> 'Hat'",
        "metadata: + cms_id, managed_by, sync_hash (its own kept: supabase_id)",
        "price: 12.50 EUR kept (price_old)",
    ]


def test_a_stored_product_gone_from_stripe_is_said_and_the_row_created_as_its_own():
    [action] = settle_adoptions([adoption()], {})
    assert action.kind is ActionKind.CREATE and action.desired.stripe_id == "cms_42"
    assert action.notes == (
        (
            "stripe_product_id_gone: prod_old (the row's stripe_product_id) is not in Stripe; "
            "created as cms_42"
        ),
    )
    assert action.diff()[0] == action.notes[0]


def test_a_stale_stored_id_beside_the_rows_own_product_reconciles_that_one_every_time():
    own = product("cms_42", managed_by="stripe_sync", cms_id="42")
    [action] = settle_adoptions([adoption()], {"cms_42": own})  # prod_old is gone
    assert action.kind is ActionKind.RECONCILE and action.desired.stripe_id == "cms_42"
    assert action.notes == ()


def test_a_product_already_managed_for_the_row_is_reconciled_and_for_another_row_holds_it():
    ours = product("prod_old", managed_by="stripe_sync", cms_id="42")
    [action] = settle_adoptions([adoption()], {"prod_old": ours})
    assert action.kind is ActionKind.RECONCILE and action.desired.stripe_id == "prod_old"

    theirs = product("prod_old", managed_by="stripe_sync", cms_id="7")
    [action] = settle_adoptions([adoption()], {"prod_old": theirs})
    assert action.kind is ActionKind.HELD
    assert action.reasons == ("adopt_ambiguous: prod_old is managed for the catalog row '7'",)


def test_the_pipelines_own_product_of_the_row_beside_the_one_found_holds_the_row():
    own = product("cms_42", managed_by="stripe_sync", cms_id="42")
    [action] = settle_adoptions([adoption()], {"prod_old": product("prod_old"), "cms_42": own})
    assert action.kind is ActionKind.HELD
    assert action.reasons == (
        "adopt_ambiguous: cms_42 (the pipeline's own) and prod_old both claim the row",
    )


def test_one_product_claimed_by_two_rows_holds_both():
    actions = settle_adoptions(
        [adoption(cms_id="42"), adoption(cms_id="43")], {"prod_old": product("prod_old")}
    )
    assert [a.kind for a in actions] == [ActionKind.HELD, ActionKind.HELD]
    assert actions[0].reasons == ("adopt_ambiguous: prod_old is claimed by the rows '42', '43'",)
