"""A catalog read through a field mapping: the mapped id orders the keyset pages and the
batches, the mapped updated_at the change feed; `where`, skipped and soft-deleted rows are
left out of every read; a query model is read a page at a time."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from stripe_sync.backends import open_catalog
from stripe_sync.core.contract import change_cursor
from stripe_sync.settings.model import CatalogSettings
from stripe_sync_tests.support.own_schemas import (
    SHOP_EXPORT,
    STOREFRONT_VIEW,
    SUPABASE_STARTER,
    TAGGED,
    Cms,
)
from stripe_sync_tests.support.tables import every_row

BACKENDS = ("postgres", "sqlite", "supabase")


def opened(
    cms: Cms,
    *,
    supabase: bool,
    use_query: bool = False,
    **changed_settings,
):
    """The catalog of `cms` as its schema maps it, with `changed_settings` of the catalog
    section changed, checked as pre-flight checks it."""
    section = cms.schema.settings(cms.name, supabase=supabase, use_query=use_query)["catalog"]
    settings = CatalogSettings(**section | changed_settings)
    mapping = settings.mapping()
    url, key = cms.supabase or (None, None)
    catalog = open_catalog(
        database_url=cms.database_url,
        supabase_url=url,
        supabase_key=key,
        table=settings.table,
        mapping=mapping,
        query=settings.query,
        where=settings.where,
    )
    catalog.check()
    return catalog


@pytest.mark.parametrize("backend", BACKENDS)
def test_ids_and_rows_are_the_mapped_ones_without_rows_outside_the_catalog(backend, own_schema):
    cms = own_schema(backend, SHOP_EXPORT)
    catalog = opened(cms, supabase=backend == "supabase")

    ids = list(catalog.iter_ids())
    rows = list(catalog.read_rows(["A-101", "A-102", "A-103", "A-104"]))

    # A-102 is digital (outside `where`), A-103 a draft (skipped).
    assert ids == ["A-100", "A-101", "A-104", "A-105"]
    assert catalog.count_ids() == 4
    assert [
        (row["id"], row["name"], row["price"], row["currency"], row["active"], row["metadata.sku"])
        for row in rows
    ] == [
        ("A-101", "Canvas tote", "990", "USD", True, "A-101"),
        ("A-104", "Old scarf", "1500", "EUR", False, "A-104"),
    ]
    assert not catalog.has_write_back_columns
    catalog.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_changes_follow_the_mapped_updated_at_then_the_mapped_id(backend, own_schema):
    cms = own_schema(backend, SHOP_EXPORT)
    cms.execute(
        "update {t} set modified_at = '2026-11-02 09:00:00+00' where sku = 'A-100'",
        "update {t} set modified_at = '2026-11-01 09:00:00+00' where sku <> 'A-100'",
    )
    catalog = opened(cms, supabase=backend == "supabase")

    first = catalog.changed_since(None, 2)
    rest = catalog.changed_since(change_cursor(first[-1]), 10)

    assert [row["id"] for row in first + rest] == ["A-101", "A-104", "A-105", "A-100"]
    catalog.close()


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_a_query_models_ids_are_read_in_keyset_pages_and_its_rows_by_id(backend, own_schema):
    cms = own_schema(backend, STOREFRONT_VIEW)
    catalog = opened(cms, supabase=False, use_query=True)
    statements: list[str] = []
    sa.event.listen(
        catalog.engine,
        "before_cursor_execute",
        lambda _connection, _cursor, statement, *_: statements.append(statement),
    )

    ids = list(catalog.iter_ids(page_size=1))
    rows = list(catalog.read_rows(ids))

    assert ids == ["10", "11", "12"]
    assert [row["metadata.category"] for row in rows] == ["Kitchen", "Kitchen", "Living"]
    reads = [statement for statement in statements if "category_id" in statement]
    assert len(reads) == 4 + 1  # a page of ids each (and an empty last one), the rows at once
    assert all("LIMIT" in statement.upper() for statement in reads[:4])
    catalog.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_soft_deleted_rows_are_out_until_restored(backend, own_schema):
    cms = own_schema(backend, SUPABASE_STARTER)
    catalog = opened(cms, supabase=backend == "supabase")
    before = list(catalog.iter_ids())
    cms.execute("update {t} set deleted_at = NULL where id = 3")

    assert before == ["1", "2", "9"]
    assert list(catalog.iter_ids()) == ["1", "2", "3", "9"]
    assert [row["currency"] for row in every_row(catalog)] == [None] * 4
    catalog.close()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("rule", "kept"),
    [
        ({"skip": {"column": "is_active", "values": [False]}}, ["1", "2"]),
        ({"skip": {"column": "is_active", "values": ["true"]}}, ["9"]),
        ({"skip": {"column": "id", "values": [2, 9]}}, ["1"]),
        ({"deleted": {"column": "is_active", "values": [False]}}, ["1", "2", "3"]),
    ],
    ids=["boolean-false", "boolean-true-as-text", "integer", "deleted-boolean"],
)
def test_skip_and_deleted_rules_on_boolean_and_integer_columns_pass_preflight_and_leave_rows_out(
    backend, own_schema, rule, kept
):
    cms = own_schema(backend, SUPABASE_STARTER)
    catalog = opened(cms, supabase=backend == "supabase", **rule)

    assert list(catalog.iter_ids()) == kept
    assert [row["id"] for row in every_row(catalog)] == kept
    catalog.close()


@pytest.mark.parametrize("backend", ["postgres", "supabase"])
def test_arrays_in_metadata_are_their_elements_joined_by_commas(backend, own_schema):
    cms = own_schema(backend, TAGGED)
    catalog = opened(cms, supabase=backend == "supabase")

    rows = every_row(catalog)

    assert [
        (row["metadata.tags"], row["metadata.sizes"], row["metadata.weight"]) for row in rows
    ] == [
        ("tag4, line2", "S, M", "0.50"),
        ("with, comma", "", None),  # a NULL element left out; an empty array is no value
        ("", '{"size": "L"}', "1.00"),  # a JSON object and a number stay their text
    ]
    catalog.close()
