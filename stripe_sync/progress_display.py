"""The migration's progress as a command shows it: one bar for the whole migration on a
terminal (rich), a plain line now and then where the output is no terminal (CI, a log file).

    migration ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╺━━━━━━━━━━━━━  75.0% 150/200 · ETA 20 s
              140 done · 5 failed · 5 quarantined · 2.5/s
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
from rich.progress import Progress as Bar
from rich.text import Text

from stripe_sync.core.progress import MigrationProgress, Snapshot

PLAIN_LINE_EVERY_S = 10.0


@contextlib.contextmanager
def migration_progress(
    output: TextIO | None = None, *, plain_every_s: float = PLAIN_LINE_EVERY_S
) -> Iterator[MigrationProgress]:
    """A `MigrationProgress` drawn on `output` (default stdout) until the block ends. On a
    terminal, what the command prints meanwhile goes above the bar."""
    with contextlib.ExitStack() as stack:
        output = output or stack.enter_context(_stdout_of_our_own())
        if _descriptor_is_terminal(output, None):
            # The descriptor decides, not FORCE_COLOR or TTY_COMPATIBLE (a CI log is no
            # terminal, whatever its colours).
            console = Console(file=output, force_terminal=True)
            yield stack.enter_context(_bar(console))
        else:
            yield stack.enter_context(_plain_lines(output, plain_every_s))


def _descriptor_is_terminal(stream: TextIO, same_as: TextIO | None) -> bool:
    """Whether `stream` writes to a terminal (`same_as`: to the terminal `same_as` writes to)."""
    try:
        descriptor = stream.fileno()
        if not os.isatty(descriptor):
            return False
        return same_as is None or os.path.samestat(os.fstat(descriptor), os.fstat(same_as.fileno()))
    except (AttributeError, OSError, ValueError):  # not a file (a StringIO, a test's capture)
        return False


@contextlib.contextmanager
def _stdout_of_our_own() -> Iterator[TextIO]:
    """Standard output on a descriptor of its own. While a run executes, Dagster points
    descriptor 1 at the run's captured log (what steps print): the bar must still reach the
    terminal, and stay out of that log."""
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (a test runner's capture)
        yield sys.stdout
        return
    sys.stdout.flush()
    with os.fdopen(os.dup(descriptor), "w", encoding=sys.stdout.encoding) as stdout:
        yield stdout


@contextlib.contextmanager
def _bar(console: Console) -> Iterator[MigrationProgress]:
    """The bar on one line, the rows on the next, so both fit an 80-column terminal."""
    bar = Bar(
        TextColumn("[bold]migration"),
        BarColumn(bar_width=None),
        TextColumn("{task.percentage:>5.1f}%"),
        MofNCompleteColumn(),
        TextColumn("{task.fields[eta]}"),
        console=console,
        expand=True,
    )
    rows = _RowsLine()
    task = None

    def draw(snapshot: Snapshot) -> None:
        nonlocal task
        eta = "" if snapshot.eta_s is None else f"· ETA {snapshot.eta_s:.0f} s"
        fields = {"total": snapshot.total, "completed": snapshot.tally.rows, "eta": eta}
        rows.snapshot = snapshot
        if task is None:  # the bar appears when the migration starts, not at pre-flight
            task = bar.add_task("migration", **fields)
        else:
            bar.update(task, **fields)

    progress = MigrationProgress(draw)
    # Standard error goes above the bar too where it is the same terminal; redirected
    # elsewhere (`2>errors.log`), it stays where it was sent.
    same_terminal = _descriptor_is_terminal(sys.stderr, console.file)
    live = Live(
        Group(bar, rows), console=console, refresh_per_second=10, redirect_stderr=same_terminal
    )
    with live:
        try:
            yield progress
        finally:
            with contextlib.suppress(OSError):  # the terminal may be gone by now
                if task is not None:
                    draw(progress.snapshot())  # the bar as it ends: its rate and time final
                live.refresh()


class _RowsLine:
    """The line under the bar: what became of the rows, and the rate."""

    snapshot: Snapshot | None = None

    def __rich__(self) -> Text:
        if self.snapshot is None:
            return Text("")
        tally = self.snapshot.tally
        return Text(
            f"          {tally.done} done · {tally.failed} failed · "
            f"{tally.quarantined} quarantined · {self.snapshot.rate:.1f}/s"
        )


@contextlib.contextmanager
def _plain_lines(output: TextIO, every_s: float) -> Iterator[MigrationProgress]:
    """A line at the start, at most one every `every_s` (MigrationProgress tells one change
    at a time), and one at the end."""
    last_line: float | None = None

    def line(snapshot: Snapshot, *, due: bool = False) -> None:
        nonlocal last_line
        now = time.monotonic()
        if due or last_line is None or now - last_line >= every_s:
            last_line = now
            print(f"migration: {snapshot.describe()}", file=output, flush=True)

    progress = MigrationProgress(line)
    try:
        yield progress
    finally:
        if last_line is not None:  # the migration started
            with contextlib.suppress(OSError):  # the pipe may be gone by now
                line(progress.snapshot(), due=True)
