"""How far a whole migration is, over all its runs and batches: the catalog rows done, failed
and quarantined, the rate and the time left, for a person to read.

A run reports what its rows came to so far (`RunProgress.run_progressed`, totals of this
run, not increments, so a late or repeated report is harmless); the migration adds the last
report of every run it finished to the live one of the run under way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

# The report's results (`core.report.RESULTS`) a catalog row can have, by what the bar calls
# them (a held row is kept back like an invalid one). Products of rows no longer in the
# catalog (archived, orphaned) are not catalog rows.
_DONE = {"created", "adopted", "updated", "unchanged"}
_FAILED, _QUARANTINED = {"failed"}, {"invalid", "held"}
_UNCHANGED = "unchanged"  # done, by an earlier run: in sync already, no request
_NOT_A_ROW = {"archived", "orphaned"}


@dataclass(frozen=True)
class Tally:
    """Catalog rows by what became of them."""

    done: int = 0  # in sync with Stripe: created, updated or unchanged
    failed: int = 0
    quarantined: int = 0  # invalid, never sent to Stripe
    unchanged: int = 0  # of `done`, those an earlier run had done: no request, no time

    @property
    def rows(self) -> int:
        return self.done + self.failed + self.quarantined

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.done + other.done,
            self.failed + other.failed,
            self.quarantined + other.quarantined,
            self.unchanged + other.unchanged,
        )

    @classmethod
    def of_results(cls, results: Iterable[str]) -> Tally:
        """The tally of row results as the report names them (`core.report.RESULTS`)."""
        done = failed = quarantined = unchanged = 0
        for result in results:
            if result in _DONE:
                done += 1
                if result == _UNCHANGED:
                    unchanged += 1
            elif result in _FAILED:
                failed += 1
            elif result in _QUARANTINED:
                quarantined += 1
            elif result not in _NOT_A_ROW:
                raise ValueError(f"no row of the bar has the result {result!r}")
        return cls(done, failed, quarantined, unchanged)


class RunProgress(Protocol):
    """Where a run says what its rows have come to so far."""

    def run_progressed(self, so_far: Tally) -> None: ...


class NoProgress:
    """A run nobody watches (the UI's runs, the sensors'): reports go nowhere."""

    def run_progressed(self, so_far: Tally) -> None:
        pass


@dataclass(frozen=True)
class Snapshot:
    """The migration at one moment."""

    total: int  # the catalog's rows (more if rows were added while the migration ran)
    tally: Tally
    elapsed_s: float

    @property
    def percent(self) -> float:
        return 100.0 * self.tally.rows / self.total if self.total else 100.0

    @property
    def rate(self) -> float:
        """Rows this command settled per second of it. Rows an earlier run had done settle
        at once as unchanged: counted, they would make the time left look a fraction of it."""
        worked = self.tally.rows - self.tally.unchanged
        return worked / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        left = self.total - self.tally.rows
        if left <= 0:
            return 0.0
        return left / self.rate if self.rate else None

    def describe(self) -> str:
        """One plain line: `75.0% (150/200): 140 done, 5 failed, 5 quarantined; 2.5/s, ETA 20 s`."""
        eta = "?" if self.eta_s is None else f"{self.eta_s:.0f} s"
        return (
            f"{self.percent:.1f}% ({self.tally.rows}/{self.total}): {self.tally.done} done, "
            f"{self.tally.failed} failed, {self.tally.quarantined} quarantined; "
            f"{self.rate:.1f}/s, ETA {eta}"
        )


class MigrationProgress:
    """The rows of a migration over all its runs. `on_change` is told every change, one call
    at a time (from whichever thread made it): keep it cheap."""

    def __init__(
        self,
        on_change: Callable[[Snapshot], None] = lambda snapshot: None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._on_change = on_change
        self._clock = clock
        self._lock = threading.Lock()
        self._telling = threading.Lock()  # one `on_change` at a time, the latest snapshot last
        self._started = clock()
        self._total = 0
        self._finished = Tally()  # the runs that ended
        self._running = Tally()  # the run under way, as it last said

    def start(self, total: int) -> None:
        """The migration begins: `total` catalog rows."""
        with self._lock:
            self._started, self._total = self._clock(), total
        self._changed()

    def run_progressed(self, so_far: Tally) -> None:
        with self._lock:
            self._running = so_far
        self._changed()

    def run_finished(self) -> None:
        """The run under way ended: what it said last is what it did."""
        with self._lock:
            self._finished, self._running = self._finished + self._running, Tally()
        self._changed()

    def all_batches_ran(self) -> None:
        """Every batch ran: the rows settled are all there were (rows added to the catalog
        since the count included)."""
        with self._lock:
            self._total = self._finished.rows + self._running.rows
        self._changed()

    def snapshot(self) -> Snapshot:
        with self._lock:
            tally = self._finished + self._running
            return Snapshot(max(self._total, tally.rows), tally, self._clock() - self._started)

    def _changed(self) -> None:
        with self._telling:
            try:
                self._on_change(self.snapshot())
            except Exception:  # noqa: BLE001 - a display that fails must not stop a migration
                # (a closed pipe, a full disk): it is switched off, the sync goes on.
                self._on_change = _ignore


def _ignore(snapshot: Snapshot) -> None:
    pass
