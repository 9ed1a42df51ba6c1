"""The state of versions that kept it in JSON files, moved into the state store once:
whichever `open_state` opened (SQL or Supabase), written through `StateStore` alone.

Those versions wrote, under the state directory (`paths.state_dir`, default
`$DAGSTER_HOME/stripe_sync`): `checkpoints/<batch>.json`, `ledger/<step>/<batch>.json`, and
backups under `paths.backups_dir` (default `<state dir>/backups`) as
`<taken_at>_<run_id>/<batch>.json`. Each folder, once imported, is renamed `<name>.imported`,
so the import runs once and the files stay for a look. An unreadable file is skipped with a
warning naming it: what it held is rebuilt by the next run (a row without a checkpoint is
reconciled with Stripe: reads, and only the writes that differ).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stripe_sync.core.backups import Backup
from stripe_sync.core.checkpoints import Checkpoint
from stripe_sync.core.state import StateStore
from stripe_sync.core.wording import counted

log = logging.getLogger(__name__)
IMPORTED = ".imported"


@dataclass(frozen=True)
class Imported:
    checkpoints: int = 0
    outcome_records: int = 0
    backups: int = 0
    unreadable: tuple[str, ...] = ()

    @property
    def anything(self) -> bool:
        return bool(self.checkpoints or self.outcome_records or self.backups or self.unreadable)

    def describe(self) -> str:
        text = (
            "imported the state kept in files by an earlier version: "
            f"{counted(self.checkpoints, 'checkpoint')}, "
            f"{counted(self.outcome_records, 'outcome record')}, {counted(self.backups, 'backup')}"
        )
        if self.unreadable:
            text += (
                f"; skipped {counted(len(self.unreadable), 'unreadable file')} (rebuilt by the "
                "next run)"
            )
        return text


def import_files(state: StateStore, state_dir: Path, backups_dir: Path) -> Imported:
    """Move the JSON state under `state_dir` and `backups_dir` into `state` (no Stripe request)."""
    unreadable: list[str] = []
    checkpoints = _import(
        state_dir / "checkpoints",
        "*.json",
        unreadable,
        lambda path, data: _checkpoints(state, path, data),
    )
    records = _import(
        state_dir / "ledger",
        "*/*.json",
        unreadable,
        lambda path, data: state.save_outcomes(path.parent.name, path.stem, data) or 1,
    )
    backups = _import(
        backups_dir,
        "*/*.json",
        unreadable,
        lambda path, data: state.save_backup(Backup(**data)) and 1,
    )
    return Imported(checkpoints, records, backups, tuple(unreadable))


def _checkpoints(state: StateStore, path: Path, data: dict) -> int:
    state.record([], {path.stem: {cms_id: Checkpoint(**entry) for cms_id, entry in data.items()}})
    return len(data)


def _import(
    folder: Path, pattern: str, unreadable: list[str], store: Callable[[Path, dict], int]
) -> int:
    if not folder.is_dir():
        return 0
    count = 0
    for path in sorted(folder.glob(pattern)):
        try:
            data = json.loads(path.read_text())
            count += store(path, data)
        except (OSError, ValueError, TypeError, KeyError) as error:
            log.warning("skipped the unreadable state file %s (%s)", path, type(error).__name__)
            unreadable.append(str(path))
    folder.rename(folder.with_name(folder.name + IMPORTED))
    return count
