from datetime import UTC, datetime

import pytest

from stripe_sync.core.contract import SOURCE_COLUMNS
from stripe_sync.core.mapping import DEFAULT_MAPPING, FieldMapping, ValueRule

SHOP = FieldMapping(
    columns={"id": "sku", "name": "title", "price": "price_cents", "images": None},
    price_unit="minor",
    currency="eur",
    active=ValueRule("status", ("active", "sale")),
    skip=ValueRule("status", ("draft",)),
    deleted=ValueRule("deleted_at"),
    metadata={"sku": "sku", "category": "category_name"},
)


@pytest.mark.parametrize(
    ("rule", "value", "holds"),
    [
        (ValueRule("status", ("active",)), "active", True),
        (ValueRule("status", ("active",)), "draft", False),
        (ValueRule("status", ("active",)), None, False),
        (ValueRule("state", (1,)), "1", True),  # values compare as text
        (ValueRule("is_deleted", (True,)), True, True),
        (ValueRule("deleted_at"), datetime(2026, 1, 1, tzinfo=UTC), True),
        (ValueRule("is_published"), False, False),
        (ValueRule("is_published"), None, False),
    ],
)
def test_a_value_rule_holds_for_its_values_or_a_set_column(rule, value, holds):
    assert rule.holds(value) is holds


def test_a_row_read_through_the_mapping_has_every_field_and_metadata_by_key():
    row = {
        "id": "A-1",
        "name": "Hat",
        "price": "1250",
        "active": "draft",
        "updated_at": None,
        "description": None,
        "metadata__0": "A-1",
        "metadata__1": "Hats",
        "sync_status": "synced",
    }

    shaped = SHOP.shaped(row)

    assert shaped == {
        "id": "A-1",
        "name": "Hat",
        "description": None,
        "price": "1250",
        "currency": None,
        "images": None,
        "active": False,
        "updated_at": None,
        "metadata.sku": "A-1",
        "metadata.category": "Hats",
        "sync_status": "synced",
    }


def test_a_field_without_a_column_is_read_from_nowhere_and_active_without_one_is_true():
    mapping = FieldMapping(columns={"active": None})

    assert "active" not in mapping.read()
    assert mapping.shaped({"id": "1"})["active"] is True


def test_the_mapping_names_the_setting_of_every_column_it_reads():
    assert SHOP.referenced() == [
        ("catalog.columns.id", "sku"),
        ("catalog.columns.name", "title"),
        ("catalog.columns.description", "description"),
        ("catalog.columns.price", "price_cents"),
        ("catalog.active", "status"),
        ("catalog.columns.updated_at", "updated_at"),
        ("catalog.deleted", "deleted_at"),
        ("catalog.skip", "status"),
        ("catalog.metadata.sku", "sku"),
        ("catalog.metadata.category", "category_name"),
    ]


def test_the_mapping_describes_itself_a_line_a_field():
    assert SHOP.describe() == [
        "id <- sku",
        "name <- title",
        "description <- description",
        "price <- price_cents (minor units)",
        "currency: eur for every row",
        "images <- (no column)",
        "active <- status in (active, sale)",
        "updated_at <- updated_at",
        "deleted: rows where deleted_at is set (left out: removed from Stripe if synced before)",
        "skip: rows where status in (draft) (left out: removed from Stripe if synced before)",
        "metadata.sku <- sku",
        "metadata.category <- category_name",
    ]


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"columns": {"sku": "id"}}, "sku is not a field"),
        ({"columns": {"id": None}}, "the field id needs a column"),
        ({"price_unit": "cents"}, "price_unit must be major or minor"),
    ],
)
def test_a_mapping_that_cannot_work_is_refused(mapping, message):
    with pytest.raises(ValueError, match=message):
        FieldMapping(**mapping)


def test_the_default_mapping_is_the_projects_own_table():
    assert DEFAULT_MAPPING.is_default and not SHOP.is_default
    assert DEFAULT_MAPPING.read() == {name: name for name in SOURCE_COLUMNS}


def test_columns_naming_the_stripe_ids_another_tool_synced_are_read_apart_from_the_write_back():
    mapping = FieldMapping(columns={"stripe_product_id": "legacy_product"})
    assert mapping.read() == {name: name for name in SOURCE_COLUMNS} | {
        "held__stripe_product_id": "legacy_product",
    }
    assert "stripe_product_id <- legacy_product" in mapping.describe()
    assert "stripe_product_id <- (no column)" not in DEFAULT_MAPPING.describe()
