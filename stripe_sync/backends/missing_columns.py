"""What both catalogs (SQL, Supabase) say when a table doesn't fit the contract
(`stripe_sync.core.contract`), and the migration that adds the write-back columns."""

from __future__ import annotations

from collections.abc import Iterable

from stripe_sync.core.errors import CatalogError

MIGRATION = "supabase/migrations/20261126000000_stripe_sync.sql"


def missing_columns_error(
    table: str, missing: Iterable[tuple[str, str]], write_back: Iterable[str] = ()
) -> CatalogError:
    """The error for a model without some columns its mapping names (`missing`: (setting,
    column)) or with only some of the write-back columns (`write_back`: those it lacks)."""
    missing, write_back = list(missing), list(write_back)
    problems = []
    if missing:
        named = ", ".join(f"{column} ({key})" for key, column in missing)
        problems.append(
            f"the columns {named}: map each to a column it has in stripe_sync.yaml (null "
            "leaves an optional field out), or add them"
        )
    if write_back:
        problems.append(
            f"the write-back columns {', '.join(write_back)} (they are optional, but all or "
            f"none: add these, e.g. with {MIGRATION}, or drop the others)"
        )
    return CatalogError(f"Table {table} lacks {' and '.join(problems)}.")
