"""What the pipeline needs of a catalog, and nothing of how one is reached.

`core/` works against these: a catalog hands over rows of `SOURCE_COLUMNS` plus the sync
state of `WRITE_BACK_COLUMNS`, and takes `WriteBack`s. The SQL and Supabase catalogs
(`stripe_sync.backends`) implement `Catalog`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import pandas as pd

if TYPE_CHECKING:  # the mapping module builds on this one
    from stripe_sync.core.mapping import PricesModel

# The catalog's table unless the settings name another (catalog.table).
DEFAULT_TABLE = "products"
SOURCE_COLUMNS = (
    "id",
    "name",
    "description",
    "price",
    "currency",
    "images",
    "active",
    "updated_at",
)
WRITE_BACK_COLUMNS = (
    "stripe_product_id",
    "stripe_price_id",
    "sync_status",
    "sync_error",
    "synced_at",
    "sync_hash",
)
SYNC_STATUSES = ("synced", "failed", "invalid", "archived")
# A column of the catalog's own naming the Stripe product a row already is (synced by another
# tool: `catalog.columns.stripe_product_id`). Read, never written; handed over under this
# label beside the write-back columns, and used where those hold no id.
HELD_PRODUCT_ID = "held__stripe_product_id"


@dataclass(frozen=True)
class WriteBack:
    """The sync result of one catalog row: exactly the values of the write-back columns."""

    id: str
    stripe_product_id: str | None
    stripe_price_id: str | None
    sync_status: str | None  # None (with synced_at None): never synced, as rollback restores
    sync_error: str | None
    synced_at: datetime | None
    sync_hash: str | None

    def __post_init__(self) -> None:
        if self.sync_status is not None and self.sync_status not in SYNC_STATUSES:
            raise ValueError(
                f"sync_status must be one of {SYNC_STATUSES}, not {self.sync_status!r}"
            )
        if self.synced_at is not None and self.synced_at.utcoffset() is None:
            raise ValueError("synced_at must be timezone-aware (UTC)")

    def columns(self) -> dict[str, object]:
        """The write-back column values, keyed by column name (without `id`)."""
        return {column: getattr(self, column) for column in WRITE_BACK_COLUMNS}


class CatalogWriter(Protocol):
    def write_back(self, results: Sequence[WriteBack]) -> int:
        """Write the write-back columns (and only those); return the requests or
        statements made."""


class Catalog(CatalogWriter, Protocol):
    table: str
    prices: PricesModel | None  # where the prices are, when a prices model holds them

    @property
    def has_write_back_columns(self) -> bool:
        """Whether the table has the write-back columns (all of them: `check` refuses a table
        with only some). Without them its rows hold none of WRITE_BACK_COLUMNS, and the
        pipeline keeps the sync state in its state store alone."""

    def describe(self) -> str:
        """Where the catalog is, e.g. "PostgreSQL 127.0.0.1:5432/test, table products";
        never a password or key."""

    def check(self) -> None:
        """Raise CatalogError when the catalog is unreachable, the table is missing, it lacks
        catalog columns or has only some of the write-back columns."""

    def iter_ids(self, page_size: int = 10_000) -> Iterator[str]:
        """Every id as text, in the database's order of the id column."""

    def count_ids(self) -> int:
        """How many rows the catalog holds."""

    def read_rows(self, ids: Sequence[str]) -> Iterator[dict]:
        """The rows with these ids that the catalog holds (a long list is read in parts, in
        the order given, each part in id order); each holds exactly SOURCE_COLUMNS
        (+ WRITE_BACK_COLUMNS where the table has them), `id` as text."""

    def read_prices(self, product_ids: Sequence[str]) -> Iterator[dict]:
        """With a prices model: its rows whose product_id is one of `product_ids`, in
        (product_id, id) order; each holds the price fields (`core.mapping.PRICE_FIELDS`), id,
        product_id and amount as text. Without one: nothing."""

    def changed_since(self, after: tuple[str, str] | None, limit: int) -> list[dict]:
        """At most `limit` rows (shaped as `read_rows` makes them) whose (updated_at, id) comes
        after `after` (None: from the start), ordered by updated_at, then id; rows without
        an updated_at are left out. `after` holds text: updated_at as ISO 8601 (or as stored,
        in SQLite) and the id."""

    def close(self) -> None: ...


def change_cursor(row: dict) -> tuple[str, str]:
    """The `after` of `Catalog.changed_since` that continues past this row."""
    updated_at = row["updated_at"]
    return (
        updated_at.isoformat() if isinstance(updated_at, datetime) else str(updated_at),
        str(row["id"]),
    )


def with_prices(rows: list[dict], prices: Iterable[dict]) -> list[dict]:
    """Each row with its product's price rows under `prices` (in the order read); the price
    rows of no row in `rows` are returned."""
    by_product: dict[str, list[dict]] = {row["id"]: [] for row in rows}
    orphans = []
    for price in prices:
        found = by_product.get(price["product_id"])
        (orphans if found is None else found).append(price)
    for row in rows:
        row["prices"] = by_product[row["id"]]
    return orphans


def catalog_frame(rows: list[dict]) -> pd.DataFrame:
    """Rows read from a catalog (each with its `batch`), values untouched (dtype object): the
    shape validation takes."""
    columns = ["batch", *SOURCE_COLUMNS, *WRITE_BACK_COLUMNS]
    mapped = [key for key in (rows[0] if rows else {}) if key not in columns]  # metadata.<column>
    return pd.DataFrame(rows, columns=[*columns, *mapped], dtype=object)
