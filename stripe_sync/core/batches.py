"""Batches: which catalog rows form which Dagster partition.

The rule: batches are ranges of the catalog's id order (the database's own order of
the id column, numeric for integer ids). A batch is named by its position and its first
id, `00003~prod-0301`, and holds every id from its first id up to (not including) the
next batch's first id; the first batch also holds anything before it, the last anything
after. Registration only ever appends: when the last batch holds more than `batch_size`
ids, new batches start at every `batch_size`-th id beyond it. So a product stays in its
batch for good, and new products (usually new, higher ids) fill new batches without
reshuffling old ones; a new id inside an old range joins that batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Protocol
from urllib.parse import quote, unquote

_SEPARATOR = "~"


class IdSource(Protocol):
    def iter_ids(self, start: str | None = None, page_size: int = 10_000) -> Iterable[str]: ...


@dataclass(frozen=True)
class Batch:
    key: str
    lower: str | None  # inclusive; None for the first batch
    upper: str | None  # exclusive; None for the last batch

    def describe(self) -> str:
        lower = "the start" if self.lower is None else repr(self.lower)
        upper = "the end" if self.upper is None else repr(self.upper)
        return f"ids from {lower} up to {upper}"


def batch_key(position: int, first_id: str) -> str:
    # Percent-encoding keeps any id (spaces, slashes, control characters) a valid,
    # readable partition key.
    return f"{position:05d}{_SEPARATOR}{quote(first_id, safe='-_.')}"


def first_id_of(key: str) -> str:
    return unquote(key.split(_SEPARATOR, 1)[1])


def batches(keys: Sequence[str]) -> list[Batch]:
    """The ranges of registered batch keys (in registration order)."""
    firsts = [first_id_of(key) for key in keys]
    return [
        Batch(key, None if i == 0 else firsts[i], firsts[i + 1] if i + 1 < len(firsts) else None)
        for i, key in enumerate(keys)
    ]


def new_batch_keys(catalog: IdSource, registered: Sequence[str], batch_size: int) -> list[str]:
    """Keys to append so that no batch beyond the registered ones exceeds `batch_size` ids."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    start = first_id_of(registered[-1]) if registered else None
    ids = iter(catalog.iter_ids(start=start))
    # The last registered batch keeps filling up to batch_size first.
    if registered and next(islice(ids, batch_size - 1, batch_size), None) is None:
        return []
    new_keys = []
    position = len(registered)
    for first_id in islice(ids, 0, None, batch_size):
        new_keys.append(batch_key(position, first_id))
        position += 1
    return new_keys
