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


class IdCounter(Protocol):
    def count_ids(self, start: str | None = None) -> int: ...


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


def position_of(key: str) -> int:
    return int(key.split(_SEPARATOR, 1)[0])


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
    # After the last one: the registered keys may skip a position (a new Dagster instance
    # registers the batches its state was recorded under, some may have none).
    position = position_of(registered[-1]) + 1 if registered else 0
    for first_id in islice(ids, 0, None, batch_size):
        new_keys.append(batch_key(position, first_id))
        position += 1
    return new_keys


def locate(catalog: IdCounter, keys: Sequence[str], cms_ids: Iterable[str]) -> dict[str, str]:
    """The registered batch holding each of `cms_ids` (ids the catalog holds), decided by
    the database's own order without comparing ids in Python.

    With C(s) = count_ids(s), the ids >= s: for an id x in the catalog, x >= f exactly
    when C(x) <= C(f). C falls (or stays) from batch to batch, so a binary search over the
    batches' first ids finds the last batch whose first id is at most x: one count per id
    plus a few per batch, shared between the ids."""
    if not keys:
        raise ValueError("no batches are registered")
    counts: dict[int, int] = {}

    def first_id_count(position: int) -> int:
        if position not in counts:
            counts[position] = catalog.count_ids(first_id_of(keys[position]))
        return counts[position]

    located = {}
    for cms_id in cms_ids:
        rank = catalog.count_ids(cms_id)
        low, high = 0, len(keys) - 1  # the first batch also holds what comes before it
        while low < high:
            middle = (low + high + 1) // 2
            if rank <= first_id_count(middle):
                low = middle
            else:
                high = middle - 1
        located[cms_id] = keys[low]
    return located
