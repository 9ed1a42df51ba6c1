"""What both catalogs (direct SQL, Supabase) say when a table doesn't fit the contract
(`stripe_sync.core.contract`)."""

from __future__ import annotations

from collections.abc import Iterable

from stripe_sync.core.contract import SOURCE_COLUMNS, WRITE_BACK_COLUMNS
from stripe_sync.core.errors import CatalogError

MIGRATION = "supabase/migrations/20261126000000_stripe_sync.sql"


def missing_columns_error(table: str, missing: Iterable[str]) -> CatalogError:
    """The error for a table without some of the contract's columns."""
    missing = set(missing)
    source = [column for column in SOURCE_COLUMNS if column in missing]
    write_back = [column for column in WRITE_BACK_COLUMNS if column in missing]
    problems = []
    if source:
        problems.append(f"the catalog columns {', '.join(source)} (rename or add them)")
    if write_back:
        problems.append(
            f"the write-back columns {', '.join(write_back)} (they are optional, but all or "
            f"none: add these, e.g. with {MIGRATION}, or drop the others)"
        )
    mapped = sorted(missing - set(SOURCE_COLUMNS) - set(WRITE_BACK_COLUMNS))
    if mapped:
        problems.append(
            f"the metadata columns {', '.join(mapped)} (fix STRIPE_SYNC_METADATA_COLUMNS)"
        )
    return CatalogError(f"Table {table} lacks {' and '.join(problems)}.")
