"""`stripe-sync migrate` shows one progress bar for the whole migration on a terminal (read
here through a pseudo-terminal) and plain lines where its output is no terminal; the runs'
Dagster logs stay in the log file unless a --log-level asks for them."""

from __future__ import annotations

import fcntl
import io
import os
import re
import select
import struct
import subprocess
import termios
from dataclasses import dataclass

import pyte
import pytest

from stripe_sync.core.progress import MigrationProgress, Tally
from stripe_sync.progress_display import migration_progress
from stripe_sync_tests.conftest import stripe_sync_script
from stripe_sync_tests.support.sample_catalog import sample_products

VALID, INVALID = 97, 3
ROWS = VALID + INVALID
# 20 rows a batch, 2 batches a run: 5 batches in 3 runs, so the bar must span several runs.
MIGRATE = ["migrate", "--batch-size", "20", "--batches-per-run", "2"]
FINAL = f"100.0% ({ROWS}/{ROWS}): {VALID} done, 0 failed, {INVALID} quarantined"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
# The bar, and under it the rows (an 80-column terminal fits both).
BAR = re.compile(
    r"migration\s[^\n]*?(\d+\.\d)%\s+(\d+)/(\d+)[^\n]*\n"
    r"\s*(\d+) done · (\d+) failed · (\d+) quarantined · [\d.]+/s"
)
PLAIN = re.compile(r"^migration: \d+\.\d% \(\d+/\d+\): .*; [\d.]+/s, ETA .*$")
A_RUN_LOG_LINE = "Stripe test mode at"  # what the Stripe step logs at INFO


class RecordingProgress(MigrationProgress):
    def __init__(self):
        super().__init__()
        self.reports: list[Tally] = []
        self.runs_finished = 0

    def run_progressed(self, so_far: Tally) -> None:
        self.reports.append(so_far)
        super().run_progressed(so_far)

    def run_finished(self) -> None:
        self.runs_finished += 1
        super().run_finished()


@dataclass(frozen=True)
class BarFrame:
    percent: float
    completed: int
    total: int
    done: int
    failed: int
    quarantined: int


def a_catalog_of_several_batches(products_table, pipeline_env) -> None:
    invalid = [
        {"id": f"zz-invalid-{n}", "name": f"No price {n}", "price": None, "currency": "eur"}
        for n in range(INVALID)
    ]
    pipeline_env.use_catalog(products_table(sample_products(VALID) + invalid))


def test_on_a_terminal_one_bar_spans_every_run_and_ends_at_100_percent(
    products_table, pipeline_env, emulator
):
    a_catalog_of_several_batches(products_table, pipeline_env)
    emulator.configure(latency_ms=50)  # a run takes a while: the bar must move during it

    exit_code, screen, shown = run_on_a_terminal(
        [stripe_sync_script(), *MIGRATE], pipeline_env.cli_env()
    )

    assert exit_code == 0, screen
    # What the command says of each run stands above the bar, whole, as a person sees it.
    said = [line for line in shown if re.fullmatch(r"batches \d-\d of 5: ok \(run [-\w]+\)", line)]
    assert len(said) == 3, "\n".join(shown)
    frames = bar_frames(screen)
    assert frames, screen
    assert {frame.total for frame in frames} == {ROWS}, "one bar over all runs, not one a run"
    completed = [frame.completed for frame in frames]
    assert completed == sorted(completed), "the bar never goes back (a run starts at 0)"
    # 40 rows a run: counts in between were drawn while a run went (Dagster points the
    # process's standard output elsewhere then).
    assert set(completed) - {0, 40, 80, ROWS}, f"it moves while the runs go: {completed}"
    assert frames[-1] == BarFrame(100.0, ROWS, ROWS, VALID, 0, INVALID)
    assert "5 batches (5 new), 2 per run" in screen
    assert A_RUN_LOG_LINE not in screen
    assert A_RUN_LOG_LINE in pipeline_env.log_file.read_text()


def test_without_a_terminal_it_prints_plain_lines_ending_with_the_totals(
    products_table, pipeline_env, emulator
):
    a_catalog_of_several_batches(products_table, pipeline_env)

    done = run_without_a_terminal([*MIGRATE], pipeline_env.cli_env())

    assert done.returncode == 0, done.stdout + done.stderr
    assert "\x1b" not in done.stdout and "\r" not in done.stdout
    lines = [line for line in done.stdout.splitlines() if line.startswith("migration: ")]
    assert lines and all(PLAIN.match(line) for line in lines), lines
    assert lines[0].startswith(f"migration: 0.0% (0/{ROWS}): ")
    assert lines[-1].startswith(f"migration: {FINAL}; ")
    assert A_RUN_LOG_LINE not in done.stdout + done.stderr


def test_a_log_level_brings_the_run_logs_to_the_console(products_table, pipeline_env, emulator):
    a_catalog_of_several_batches(products_table, pipeline_env)

    done = run_without_a_terminal([*MIGRATE, "--log-level", "INFO"], pipeline_env.cli_env())

    assert done.returncode == 0, done.stdout + done.stderr
    assert A_RUN_LOG_LINE in done.stderr
    assert f"migration: {FINAL}; " in done.stdout


def test_each_run_reports_its_rows_as_they_settle_and_the_migration_adds_them_up(
    products_table, pipeline_env, emulator
):
    a_catalog_of_several_batches(products_table, pipeline_env)
    pipeline_env.set(STRIPE_SYNC_BATCH_SIZE="20")
    progress = RecordingProgress()

    result = pipeline_env.migrate(batches_per_run=2, progress=progress)

    assert result.succeeded
    # Three runs, each telling how far its rows are while it goes: the products step as
    # each row settles (and at its end), the prices step at its end.
    assert progress.runs_finished == 3
    assert len(progress.reports) > VALID
    final = progress.snapshot()
    assert (final.total, final.tally) == (ROWS, Tally(VALID, 0, INVALID))
    assert final.tally == Tally(
        done=sum(result.report["counts"][name] for name in ("created", "updated", "unchanged")),
        failed=result.report["counts"]["failed"],
        quarantined=result.report["counts"]["invalid"],
    )


@pytest.mark.parametrize("claims_a_terminal", [{}, {"FORCE_COLOR": "1"}, {"TTY_COMPATIBLE": "1"}])
def test_plain_lines_come_at_most_once_an_interval_and_once_more_at_the_end(
    monkeypatch, claims_a_terminal
):
    for name, value in claims_a_terminal.items():
        monkeypatch.setenv(name, value)
    output = io.StringIO()
    with migration_progress(output, plain_every_s=3600) as progress:
        progress.start(10)
        progress.run_progressed(Tally(done=4))
        progress.run_finished()
        progress.run_progressed(Tally(done=5, failed=1))

    lines = output.getvalue().splitlines()
    assert [line.split(";")[0] for line in lines] == [
        "migration: 0.0% (0/10): 0 done, 0 failed, 0 quarantined",
        "migration: 100.0% (10/10): 9 done, 1 failed, 0 quarantined",
    ]


def test_a_migration_that_never_started_prints_no_progress():
    output = io.StringIO()
    with migration_progress(output):
        pass

    assert output.getvalue() == ""


# --- helpers ----------------------------------------------------------------------------


def run_without_a_terminal(arguments: list[str], env: dict[str, str]):
    return subprocess.run(
        [stripe_sync_script(), *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def run_on_a_terminal(command: list[str], env: dict[str, str]) -> tuple[int, str, list[str]]:
    """Run `command` with a pseudo-terminal of 24 lines of 80 columns as its stdin, stdout
    and stderr; its exit code, everything it wrote (escape sequences removed, redraws (\\r)
    as lines), and what the terminal shows at the end, the lines scrolled off it first."""
    primary, secondary = os.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    # The terminal's own size, not one a variable claims.
    sized_by_terminal = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
    process = subprocess.Popen(
        command,
        env={**sized_by_terminal, "TERM": "xterm-256color"},
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        start_new_session=True,
    )
    os.close(secondary)
    output = bytearray()
    try:
        while True:
            ready, _, _ = select.select([primary], [], [], 300)
            assert ready, "the command went silent for 5 minutes"
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: every writer of the terminal is gone
                break
            if not chunk:
                break
            output += chunk
        exit_code = process.wait(timeout=60)
    finally:
        os.close(primary)
        if process.poll() is None:
            process.kill()
    text = output.decode("utf-8", "replace")
    terminal = pyte.HistoryScreen(80, 24, history=10_000)
    pyte.Stream(terminal).feed(text.replace("\n", "\r\n"))  # the pty's own onlcr
    shown = ["".join(char.data for char in line.values()) for line in terminal.history.top]
    shown = [line.rstrip() for line in (*shown, *terminal.display)]
    return exit_code, ANSI.sub("", text).replace("\r", "\n"), shown


def bar_frames(screen: str) -> list[BarFrame]:
    return [
        BarFrame(float(m[1]), *(int(group) for group in m.groups()[1:]))
        for m in BAR.finditer(screen)
    ]
