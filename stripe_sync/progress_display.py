"""The migration's progress as a command shows it: one bar for the whole migration on a
terminal (rich), a plain line now and then where the output is no terminal (CI, a log file).

    migration ━━━━━━━━━━━━━━━━━━━━━━━━╺━━━━━━━  75.0% 150/200 · 140 done · 5 failed · 5 quarantined · 2.5/s · ETA 20 s
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
from rich.progress import Progress as Bar

from stripe_sync.core.progress import MigrationProgress, Snapshot

PLAIN_LINE_EVERY_S = 10.0


@contextlib.contextmanager
def migration_progress(
    output: TextIO | None = None, *, plain_every_s: float = PLAIN_LINE_EVERY_S
) -> Iterator[MigrationProgress]:
    """A `MigrationProgress` drawn on `output` (default stdout) until the block ends. On a
    terminal, what the command prints meanwhile goes above the bar."""
    console = Console(file=output or sys.stdout)
    if console.is_terminal:
        with _bar(console) as progress:
            yield progress
    else:
        with _plain_lines(console.file, plain_every_s) as progress:
            yield progress


@contextlib.contextmanager
def _bar(console: Console) -> Iterator[MigrationProgress]:
    bar = Bar(
        TextColumn("[bold]migration"),
        BarColumn(bar_width=None),
        TextColumn("{task.percentage:>5.1f}%"),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        expand=True,
    )
    task = None

    def draw(snapshot: Snapshot) -> None:
        nonlocal task
        fields = {"total": snapshot.total, "completed": snapshot.tally.rows}
        if task is None:  # the bar appears when the migration starts, not at pre-flight
            task = bar.add_task("migration", status=_status(snapshot), **fields)
        else:
            bar.update(task, status=_status(snapshot), **fields)

    progress = MigrationProgress(draw)
    with bar:
        try:
            yield progress
        finally:
            if task is not None:
                draw(progress.snapshot())  # the bar as it ends: its rate and time are final
                bar.refresh()


def _status(snapshot: Snapshot) -> str:
    eta = "" if snapshot.eta_s is None else f" · ETA {snapshot.eta_s:.0f} s"
    tally = snapshot.tally
    return (
        f"· {tally.done} done · {tally.failed} failed · {tally.quarantined} quarantined · "
        f"{snapshot.rate:.1f}/s{eta}"
    )


@contextlib.contextmanager
def _plain_lines(output: TextIO, every_s: float) -> Iterator[MigrationProgress]:
    lock = threading.Lock()
    last_line = [-every_s]
    started = [False]

    def line(snapshot: Snapshot, *, due: bool = False) -> None:
        with lock:
            now = time.monotonic()
            if due or now - last_line[0] >= every_s:
                last_line[0] = now
                started[0] = True
                print(f"migration: {snapshot.describe()}", file=output, flush=True)

    progress = MigrationProgress(line)
    try:
        yield progress
    finally:
        if started[0]:
            line(progress.snapshot(), due=True)
