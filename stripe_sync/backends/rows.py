"""Rows as every backend handles them: in chunks one statement or request takes, and the
state's rows read back (a checkpoint from its JSON, a sync state from its columns)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from stripe_sync.core.checkpoints import Checkpoint
from stripe_sync.core.contract import WRITE_BACK_COLUMNS, WriteBack

T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """`items` in slices of at most `size`."""
    return (items[at : at + size] for at in range(0, len(items), size))


def checkpoint_of(text: str) -> Checkpoint:
    return Checkpoint(**json.loads(text))


def write_back_of(cms_id: str, columns: Mapping[str, object]) -> WriteBack:
    values = {column: columns[column] for column in WRITE_BACK_COLUMNS}
    synced_at = values["synced_at"]
    if isinstance(synced_at, str):  # PostgREST's JSON
        values["synced_at"] = datetime.fromisoformat(synced_at)
    elif isinstance(synced_at, datetime) and synced_at.utcoffset() is None:
        values["synced_at"] = synced_at.replace(tzinfo=UTC)  # SQLite keeps UTC without its zone
    return WriteBack(id=cms_id, **values)
