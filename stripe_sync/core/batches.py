"""Batches: which catalog rows form which Dagster partition.

The rule: a row is put into a batch once, when it is registered, and stays there for good;
the state keeps the assignment (`StateStore.assign`). Registration gives every catalog row
that has no batch yet one, in the catalog's id order: first the last batch, up to
`batch_size` rows, then new batches of `batch_size`. So a batch holds the same rows whatever
the id type: new uuids or text ids that sort among old ones never move an old row, split a
batch or land in two batches, and a batch never grows past `batch_size`. A row deleted from
the catalog stays in its batch (the batch's plan archives it in mirror mode).

A batch is named by its position and the first id it was given, `00003~prod-0301`: readable
in the UI, unique, and ordered as registered.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import quote

_SEPARATOR = "~"


def batch_key(position: int, first_id: str) -> str:
    # Percent-encoding keeps any id (spaces, slashes, control characters) a valid,
    # readable partition key.
    return f"{position:05d}{_SEPARATOR}{quote(first_id, safe='-_.')}"


def position_of(key: str) -> int:
    return int(key.split(_SEPARATOR, 1)[0])


@dataclass(frozen=True)
class Registration:
    """What registering the catalog's new rows does."""

    keys: list[str]  # batch keys to register: those only the state knew of, then new ones
    assigned: dict[str, str]  # each new row's batch
    earlier: Mapping[str, str]  # the batch of every row that had one before

    def batch_of(self, cms_id: str) -> str | None:
        """A row's batch after this registration (None: no batch, e.g. added since the read)."""
        return self.assigned.get(cms_id) or self.earlier.get(cms_id)

    def members(self, key: str) -> list[str]:
        """The new rows this registration puts into a batch."""
        return self._by_batch.get(key, [])

    @cached_property
    def _by_batch(self) -> dict[str, list[str]]:  # once: a plan asks for every batch
        grouped: dict[str, list[str]] = {}
        for cms_id, batch in self.assigned.items():
            grouped.setdefault(batch, []).append(cms_id)
        return grouped


def registration(
    catalog_ids: Iterable[str],
    memberships: Mapping[str, str],
    registered: Sequence[str],
    batch_size: int,
) -> Registration:
    """The batches of the catalog rows (`catalog_ids`, in the catalog's order) that no batch
    holds yet (`memberships`: each assigned row's batch), after the `registered` batch keys
    and any the state knows that are not registered (another Dagster instance, a new home)."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    sizes = Counter(memberships.values())
    unregistered = sorted(set(sizes) - set(registered), key=position_of)
    known = sorted({*registered, *unregistered}, key=position_of)
    last = known[-1] if known else None
    room = batch_size - sizes[last] if last is not None else 0
    position = position_of(last) + 1 if last is not None else 0
    new_keys: list[str] = []
    assigned: dict[str, str] = {}
    for cms_id in catalog_ids:
        if cms_id in memberships:
            continue
        if room <= 0:
            last = batch_key(position, cms_id)
            new_keys.append(last)
            position, room = position + 1, batch_size
        assigned[cms_id] = last
        room -= 1
    return Registration([*unregistered, *new_keys], assigned, memberships)
