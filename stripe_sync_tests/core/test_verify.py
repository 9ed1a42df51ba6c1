"""Verification's rules: a batch's rows, checkpoints and Stripe products -> mismatches and repairs."""

from __future__ import annotations

from dataclasses import replace

import pytest

from stripe_sync.core.checkpoints import Checkpoint
from stripe_sync.core.identity import DesiredProduct
from stripe_sync.core.money import price_text
from stripe_sync.core.planner import SyncState
from stripe_sync.core.verify import (
    ERROR,
    PRICE,
    PRODUCT,
    WARNING,
    Mismatch,
    product_ids,
    shown,
    verify_batch,
)

HAT = DesiredProduct(
    cms_id="hat",
    name="Hat",
    description="A warm hat.",
    images=("https://img.example.com/hat.png",),
    active=True,
    currency="eur",
    unit_amount=1250,
    extra_metadata=(("sku", "H-1"),),
)
SYNCED = SyncState("cms_hat", "price_hat", "synced", HAT.sync_hash)
NEVER_SYNCED = SyncState()


def in_stripe(desired: DesiredProduct, **changes: object) -> dict:
    """The product as the pipeline made it (default price expanded), with some fields changed."""
    fields = desired.product_fields()
    product = {
        "id": desired.stripe_id,
        "object": "product",
        "name": fields["name"],
        "description": fields.get("description"),
        "images": fields["images"],
        "metadata": fields["metadata"],
        "active": fields["active"],
        "default_price": {
            "id": f"price_{desired.cms_id}",
            "currency": desired.currency,
            "unit_amount": desired.unit_amount,
            "active": True,
        },
    }
    return {**product, **changes}


def verified(rows, products, checkpoints=None, *, mirror=False):
    return verify_batch(rows, checkpoints or {}, {p["id"]: p for p in products}, mirror=mirror)


def row(desired: DesiredProduct, state: SyncState = SYNCED):
    return (desired.cms_id, desired, (), state)


def invalid(cms_id: str, state: SyncState = NEVER_SYNCED, reasons=("price_missing: no price",)):
    return (cms_id, None, reasons, state)


def test_a_product_as_the_sync_made_it_matches():
    result = verified([row(HAT)], [in_stripe(HAT)])

    assert result.mismatches == () and result.repairs == {} and result.products == 1


@pytest.mark.parametrize(
    ("changes", "field", "expected", "actual"),
    [
        ({"name": "Cap"}, "name", "Hat", "Cap"),
        ({"description": None}, "description", "A warm hat.", None),
        ({"images": []}, "images", ["https://img.example.com/hat.png"], []),
        ({"active": False}, "active", True, False),
        (
            {"metadata": {"cms_id": "hat", "managed_by": "someone", "sku": "H-1"}},
            "metadata",
            {"cms_id": "hat", "managed_by": "stripe_sync", "sku": "H-1"},
            {"cms_id": "hat", "managed_by": "someone", "sku": "H-1"},
        ),
    ],
)
def test_a_product_field_changed_in_stripe_is_a_mismatch_with_both_values(
    changes, field, expected, actual
):
    result = verified([row(HAT)], [in_stripe(HAT, **changes)])

    assert result.mismatches == (Mismatch("hat", "cms_hat", PRODUCT, field, expected, actual),)


def test_metadata_the_pipeline_does_not_own_and_the_content_hash_are_not_compared():
    metadata = {**HAT.managed_metadata(), "sync_hash": "v1:stale", "note": "added by hand"}

    assert verified([row(HAT)], [in_stripe(HAT, metadata=metadata)]).mismatches == ()


def test_an_empty_description_in_stripe_is_no_description():
    plain = replace(HAT, description=None)

    assert verified([row(plain)], [in_stripe(plain, description="")]).mismatches == ()


@pytest.mark.parametrize(
    ("default_price", "actual"),
    [
        ({"id": "price_2", "currency": "eur", "unit_amount": 999, "active": True}, "9.99 EUR"),
        ({"id": "price_2", "currency": "usd", "unit_amount": 1250, "active": True}, "12.50 USD"),
        (
            {"id": "price_hat", "currency": "eur", "unit_amount": 1250, "active": False},
            "12.50 EUR (archived)",
        ),
        (None, None),
    ],
)
def test_a_default_price_other_than_the_catalogs_is_a_price_mismatch(default_price, actual):
    result = verified([row(HAT)], [in_stripe(HAT, default_price=default_price)])

    assert result.of(PRODUCT) == []
    assert result.of(PRICE) == [
        Mismatch("hat", "cms_hat", PRICE, "default_price", "12.50 EUR", actual)
    ]


@pytest.mark.parametrize(
    ("state", "checkpoint", "note"),
    [
        (NEVER_SYNCED, None, "never synced"),
        (SyncState(None, None, "failed", None), None, "its last sync failed"),
        (SYNCED, Checkpoint.of(HAT, "price_hat"), "deleted in Stripe"),
    ],
)
def test_a_valid_row_without_its_product_is_a_mismatch_saying_why(state, checkpoint, note):
    checkpoints = {"hat": checkpoint} if checkpoint else {}

    result = verified([row(HAT, state)], [], checkpoints)

    assert result.mismatches == (
        Mismatch("hat", "cms_hat", PRODUCT, "product", "exists", "missing", note=note),
    )


def test_a_row_the_catalog_archived_must_be_archived_in_stripe():
    archived = replace(HAT, active=False)

    assert verified([row(archived)], [in_stripe(archived)]).mismatches == ()
    assert verified([row(archived)], [in_stripe(archived, active=True)]).mismatches == (
        Mismatch("hat", "cms_hat", PRODUCT, "active", False, True),
    )


def test_a_drifted_row_forgets_its_checkpoint_so_the_next_sync_reconciles_it():
    scarf = replace(HAT, cms_id="scarf", name="Scarf")
    checkpoints = {"hat": Checkpoint.of(HAT, "price_hat"), "scarf": Checkpoint.of(scarf, "p")}

    result = verified(
        [row(HAT), row(scarf)], [in_stripe(HAT, name="Cap"), in_stripe(scarf)], checkpoints
    )

    assert result.repairs == {"hat": None}


def test_a_drifted_row_without_a_checkpoint_needs_no_repair_it_is_reconciled_anyway():
    result = verified([row(HAT)], [in_stripe(HAT, name="Cap")])

    assert len(result.mismatches) == 1 and result.repairs == {}


def test_an_invalid_row_never_synced_must_not_be_live_at_its_derived_id():
    live = {"id": "cms_bad", "active": True}

    assert verified([invalid("bad")], []).mismatches == ()
    assert verified([invalid("bad")], [{**live, "active": False}]).mismatches == ()
    result = verified([invalid("bad")], [live])
    assert result.mismatches == (
        Mismatch(
            "bad",
            "cms_bad",
            PRODUCT,
            "active",
            False,
            True,
            note="invalid in the catalog and never synced, yet live in Stripe",
        ),
    )
    assert result.repairs == {}


@pytest.mark.parametrize(
    ("state", "checkpoints"),
    [
        (SYNCED, {}),  # the catalog's write-back says it was synced
        (NEVER_SYNCED, {"hat": Checkpoint.of(HAT, "price_hat")}),  # the checkpoint says so
    ],
)
def test_an_invalid_row_synced_before_keeps_its_last_version_live_as_a_warning(state, checkpoints):
    result = verified(
        [invalid("hat", state, ("name_missing: no name",))], [in_stripe(HAT)], checkpoints
    )

    [stale] = result.mismatches
    assert stale.severity == WARNING
    assert (stale.field, stale.expected, stale.actual) == (
        "catalog row",
        "valid",
        "name_missing: no name",
    )
    assert stale.note.startswith("stale")
    assert result.repairs == {}


def test_a_row_deleted_from_the_catalog_and_live_is_a_warning_with_mirror_off():
    checkpoints = {"hat": Checkpoint.of(HAT, "price_hat")}

    result = verified([], [in_stripe(HAT)], checkpoints, mirror=False)

    assert [(m.cms_id, m.field, m.expected, m.actual, m.severity) for m in result.mismatches] == [
        ("hat", "catalog row", "present", "deleted", WARNING)
    ]
    assert result.repairs == {} and result.products == 1


def test_a_row_deleted_from_the_catalog_must_be_archived_with_mirror_on():
    archived = {"hat": replace(Checkpoint.of(HAT, "price_hat"), removed=True)}

    assert verified([], [in_stripe(HAT, active=False)], archived, mirror=True).mismatches == ()
    revived = verified([], [in_stripe(HAT)], archived, mirror=True)
    assert [(m.field, m.expected, m.actual, m.severity) for m in revived.mismatches] == [
        ("active", False, True, ERROR)
    ]
    # Not removed any more: mirror mode archives it again.
    assert revived.repairs == {"hat": replace(archived["hat"], removed=False)}


def test_a_deleted_row_mirror_mode_has_not_archived_yet_needs_no_repair():
    pending = {"hat": Checkpoint.of(HAT, "price_hat")}

    result = verified([], [in_stripe(HAT)], pending, mirror=True)

    assert [m.severity for m in result.mismatches] == [ERROR] and result.repairs == {}


def test_rows_sharing_an_id_or_without_one_are_verified_once_or_not_at_all():
    rows = [invalid("dup"), invalid("dup"), invalid("")]

    result = verified(rows, [{"id": "cms_dup", "active": True}])

    assert len(result.mismatches) == 1 and result.products == 1


def test_verification_reads_every_rows_product_and_every_remembered_product_once():
    weird = replace(HAT, cms_id="a/b")
    rows = [row(HAT), row(weird), invalid("bad"), invalid("bad"), invalid("")]
    checkpoints = {
        "hat": Checkpoint.of(HAT, "p"),
        "gone": Checkpoint.of(replace(HAT, cms_id="gone"), "q"),
    }

    assert product_ids(rows, checkpoints) == ["cms_hat", weird.stripe_id, "cms_bad", "cms_gone"]
    assert weird.stripe_id.startswith("cmsx_")


def test_values_are_shown_as_text_json_or_none_and_long_ones_shortened():
    assert shown("Hat") == "Hat"
    assert shown(None) == "none"
    assert shown(False) == "false"
    assert shown({"b": "ü", "a": 1}) == '{"a": 1, "b": "ü"}'
    long = shown("x" * 500)
    assert len(long) == 200 and long.endswith("…")


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (1250, "eur", "12.50 EUR"),
        (1500, "jpy", "1500 JPY"),
        (5, "bhd", "0.005 BHD"),
        (100, "usd", "1.00 USD"),
    ],
)
def test_prices_are_shown_in_major_units_as_the_catalog_writes_them(amount, currency, text):
    assert price_text(amount, currency) == text


def test_an_adopted_product_is_verified_under_its_own_id_with_or_without_a_checkpoint():
    adopted = HAT.known_as("prod_old")
    state = SyncState("prod_old", "price_hat", "synced", HAT.sync_hash)
    rows = [("hat", HAT, (), state)]
    for checkpoints in ({"hat": Checkpoint.of(adopted, "price_hat")}, {}):
        assert "prod_old" in product_ids(rows, checkpoints)
        assert verified(rows, [in_stripe(adopted)], checkpoints).mismatches == ()
    [missing] = verified(rows, [in_stripe(HAT)]).mismatches  # its own id is not the product
    assert (missing.product_id, missing.field) == ("prod_old", "product")
