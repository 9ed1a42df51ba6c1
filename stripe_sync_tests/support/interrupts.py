"""Interrupting a command as a person or a supervisor does: signals to its process group (a
terminal's Ctrl+C reaches every process of the foreground job), at a moment drawn from a
seeded RNG."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# How a command is stopped: one Ctrl+C, two close together, or a supervisor's SIGTERM.
SIGNAL_PATTERNS = {
    "one Ctrl+C": (signal.SIGINT,),
    "two Ctrl+C": (signal.SIGINT, signal.SIGINT),
    "SIGTERM": (signal.SIGTERM,),
}


@dataclass(frozen=True)
class Interrupt:
    """`signals` to the process group, `gap_s` apart, once `after_requests` Stripe requests
    were made and `delay_s` more passed."""

    signals: tuple[signal.Signals, ...]
    after_requests: int
    delay_s: float
    gap_s: float

    @classmethod
    def drawn(
        cls, signals: tuple[signal.Signals, ...], moment: int, moments: int, requests: int
    ) -> Interrupt:
        """Moment `moment` of `moments` in a command that makes about `requests` Stripe
        requests: somewhere in that share of them (the first share starts at pre-flight's
        request), drawn by an RNG seeded with the signals and the moment."""
        rng = random.Random(f"{[s.name for s in signals]} {moment}")
        after = 1 + int((moment + rng.random()) * requests / moments)
        return cls(signals, after, rng.uniform(0.0, 0.3), rng.uniform(0.02, 0.5))

    def describe(self) -> str:
        names = " + ".join(s.name for s in self.signals)
        apart = f" {self.gap_s:.2f} s apart" if len(self.signals) > 1 else ""
        return f"{names}{apart}, {self.delay_s:.2f} s after {self.after_requests} Stripe requests"


@dataclass(frozen=True)
class Interrupted:
    returncode: int
    output: str  # stdout and stderr, as a console shows them
    signalled: bool  # False: the command had ended before its moment came


def interrupt(
    command: list[str],
    env: dict[str, str],
    output: Path,
    when: Interrupt,
    requests_made: Callable[[], int],
    *,
    timeout_s: float = 90,
) -> Interrupted:
    """Run `command` in a session of its own and interrupt it `when` says; then wait for it
    to end by itself (SIGKILL and fail after `timeout_s`)."""
    with output.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + timeout_s
            while requests_made() < when.after_requests and process.poll() is None:
                assert time.monotonic() < deadline, "the command never got going"
                time.sleep(0.01)
            time.sleep(when.delay_s)
            signalled = process.poll() is None
            for n, signum in enumerate(when.signals):
                if n:
                    time.sleep(when.gap_s)
                if process.poll() is None:
                    os.killpg(process.pid, signum)
            process.wait(timeout=max(deadline - time.monotonic(), 1))
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    return Interrupted(process.returncode, output.read_text(errors="replace"), signalled)
