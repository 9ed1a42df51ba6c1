"""A migration's progress over all its runs: rows done, failed and quarantined, rate, ETA."""

from __future__ import annotations

import pytest

from stripe_sync.core.progress import MigrationProgress, Snapshot, Tally
from stripe_sync.core.report import RESULTS


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("result", "tally"),
    [
        ("created", Tally(done=1)),
        ("updated", Tally(done=1)),
        ("unchanged", Tally(done=1, unchanged=1)),  # done by an earlier run
        ("failed", Tally(failed=1)),
        ("invalid", Tally(quarantined=1)),
        # products of rows deleted from the catalog: not rows of the catalog
        ("archived", Tally()),
        ("orphaned", Tally()),
    ],
)
def test_every_result_of_the_report_counts_as_done_failed_quarantined_or_no_row(result, tally):
    assert Tally.of_results([result]) == tally


def test_every_result_the_report_names_has_its_place_and_an_unknown_one_is_refused():
    # Created, adopted, updated and unchanged rows are done; invalid and held ones kept back.
    assert Tally.of_results(RESULTS) == Tally(done=4, failed=1, quarantined=2, unchanged=1)
    with pytest.raises(ValueError, match="'repriced'"):
        Tally.of_results(["repriced"])


def test_finished_runs_add_up_and_a_running_run_counts_as_it_last_said():
    progress = MigrationProgress()
    progress.start(100)
    progress.run_progressed(Tally(done=10))
    progress.run_progressed(Tally(done=20, quarantined=2))  # so far, not more
    progress.run_finished()
    progress.run_progressed(Tally(done=5, failed=1))

    assert progress.snapshot().tally == Tally(done=25, failed=1, quarantined=2)
    assert progress.snapshot().total == 100


def test_a_run_that_ends_without_a_report_adds_nothing():
    progress = MigrationProgress()
    progress.start(10)
    progress.run_finished()

    assert progress.snapshot().tally == Tally()


@pytest.mark.parametrize("settled", [8, 12])
def test_when_every_batch_ran_the_rows_settled_are_the_total(settled):
    """Fewer: rows deleted while it ran; more: rows added while it ran."""
    progress = MigrationProgress()
    progress.start(10)
    progress.run_progressed(Tally(done=settled))
    progress.run_finished()
    progress.all_batches_ran()

    assert progress.snapshot().total == settled
    assert progress.snapshot().percent == 100.0


def test_more_rows_than_counted_never_make_more_than_100_percent():
    progress = MigrationProgress()
    progress.start(10)
    progress.run_progressed(Tally(done=12))

    assert progress.snapshot().total == 12


def test_every_change_is_told_with_the_rate_and_time_left_since_the_start():
    clock, told = Clock(), []
    progress = MigrationProgress(told.append, clock=clock)
    progress.start(200)
    clock.now += 60.0
    progress.run_progressed(Tally(done=140, failed=5, quarantined=5))

    assert told[-1] == Snapshot(200, Tally(140, 5, 5), 60.0)
    assert told[-1].rate == 2.5
    assert told[-1].eta_s == 20.0
    assert told[-1].describe() == (
        "75.0% (150/200): 140 done, 5 failed, 5 quarantined; 2.5/s, ETA 20 s"
    )


def test_a_resumed_migration_takes_its_rate_and_time_left_from_the_rows_it_did_itself():
    """800 rows an earlier run did settle at once as unchanged; this one does 40 in 10 s."""
    clock = Clock()
    progress = MigrationProgress(clock=clock)
    progress.start(1_200)
    progress.run_progressed(Tally.of_results(["unchanged"] * 800))
    clock.now += 10.0
    progress.run_progressed(Tally.of_results(["unchanged"] * 800 + ["created"] * 40))

    snapshot = progress.snapshot()
    assert snapshot.rate == 4.0
    assert snapshot.eta_s == 90.0  # 360 rows left at 4 a second


def test_a_migration_of_rows_all_done_before_has_no_time_left():
    progress = MigrationProgress()
    progress.start(10)
    progress.run_progressed(Tally.of_results(["unchanged"] * 10))

    assert progress.snapshot().eta_s == 0.0


def test_before_any_row_settled_the_time_left_is_unknown():
    snapshot = Snapshot(10, Tally(), 3.0)

    assert snapshot.eta_s is None
    assert snapshot.describe().endswith("0.0/s, ETA ?")


def test_an_empty_catalog_is_complete():
    assert Snapshot(0, Tally(), 1.0).percent == 100.0


def test_a_display_that_fails_is_switched_off_and_the_migration_goes_on():
    told = []

    def broken_pipe(snapshot: Snapshot) -> None:
        told.append(snapshot)
        raise BrokenPipeError("the terminal went away")

    progress = MigrationProgress(broken_pipe)
    progress.start(10)
    progress.run_progressed(Tally(done=4))
    progress.run_finished()

    assert len(told) == 1
    assert progress.snapshot().tally == Tally(done=4)
