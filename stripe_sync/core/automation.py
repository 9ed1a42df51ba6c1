"""What the sensors and the schedule decide, without Dagster: which changed catalog rows need
a run, how runs group batches, and when a failed batch is retried or given up on."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta

import pandas as pd

from stripe_sync.core.validation import ValidationRules, planning_inputs, records, validate_batch


def needing_sync(rows: Sequence[dict], rules: ValidationRules) -> dict[str, str]:
    """Of some changed catalog rows (as `Catalog.read_rows` makes them), those whose sync
    would change something, each with a fingerprint of the change.

    A valid row needs one unless it is synced with the same content hash it has now (an
    `updated_at` touch, or the pipeline's own write-back, changes nothing that reaches
    Stripe); an invalid row unless it is already quarantined with the same reasons.
    """
    if not rows:
        return {}
    raw = pd.DataFrame([{"batch": "", **row} for row in rows], dtype=object)
    validated = validate_batch(raw, rules)
    needed = {}
    # One validated row per catalog row, in order (a row without an id included).
    for row, record, (cms_id, desired, reasons, state) in zip(
        rows, records(validated), planning_inputs(validated), strict=True
    ):
        if desired is not None:
            content = desired.sync_hash
            # Any product id: an adopted product keeps its own (the hash covers the row's id).
            done = (
                state.sync_status == "synced"
                and state.stripe_product_id is not None
                and state.sync_hash == content
            )
        else:
            content = "invalid: " + "; ".join(reasons)
            done = state.sync_status == "invalid" and record["sync_error"] == "; ".join(reasons)
        if not done:
            needed[cms_id] = f"{row['updated_at']} {content}"
    return needed


def runs_of(keys: Sequence[str], affected: Iterable[str], per_run: int) -> list[list[str]]:
    """The affected batches as runs: neighbours (in registration order) share a run, at
    most `per_run` batches each, so a run's batches are one partition range."""
    wanted = set(affected)
    runs: list[list[str]] = []
    previous = None
    for position, key in enumerate(keys):
        if key not in wanted:
            continue
        if runs and previous == position - 1 and len(runs[-1]) < per_run:
            runs[-1].append(key)
        else:
            runs.append([key])
        previous = position
    return runs


def digest(parts: Mapping[str, object]) -> str:
    """A short stable digest of some JSON-able values (for run keys)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- retries of failed batches -------------------------------------------------------------


@dataclass(frozen=True)
class RetryState:
    """One failed batch as the failed-batch sensor remembers it (JSON in its cursor)."""

    attempts: int  # retries requested so far
    first_failed_at: str  # when the sensor first saw the batch failed (ISO 8601)
    failed_at: str  # when it last saw a failure it had not retried yet
    requested_at: str | None = None  # when it last requested a retry
    gave_up: bool = False


@dataclass(frozen=True)
class RetryPolicy:
    base: timedelta  # the wait before the first retry; each next one waits twice as long
    max_attempts: int

    def due(self, state: RetryState) -> datetime:
        return datetime.fromisoformat(state.failed_at) + self.base * 2**state.attempts


@dataclass(frozen=True)
class RetryDecision:
    states: dict[str, RetryState]  # the new cursor
    retry: list[str]  # batches to request a run for now
    gave_up: list[str]  # batches given up on at this tick
    recovered: list[str]  # batches that succeeded since (forgotten)


def decide_retries(
    states: Mapping[str, RetryState],
    failed: Iterable[str],
    in_progress: Iterable[str],
    now: datetime,
    policy: RetryPolicy,
) -> RetryDecision:
    """Which failed batches to retry now: after `base`, then twice as long after each
    failed retry, at most `max_attempts` retries; a batch that succeeds is forgotten."""
    failed, in_progress = set(failed), set(in_progress)
    stamp = now.isoformat()
    new: dict[str, RetryState] = {}
    retry, gave_up = [], []
    recovered = [key for key in states if key not in failed and key not in in_progress]
    for key in sorted(failed | (in_progress & set(states))):
        state = states.get(key) or RetryState(0, stamp, stamp)
        if key in in_progress or key not in failed or state.gave_up:
            new[key] = state
            continue
        if state.requested_at is not None and state.requested_at >= state.failed_at:
            state = replace(state, failed_at=stamp)  # the retry failed: wait from now
        if state.attempts >= policy.max_attempts:
            state = replace(state, gave_up=True)
            gave_up.append(key)
        elif now >= policy.due(state):
            state = replace(state, attempts=state.attempts + 1, requested_at=stamp)
            retry.append(key)
        new[key] = state
    return RetryDecision(new, retry, gave_up, recovered)


def retry_states_to_json(states: Mapping[str, RetryState]) -> str:
    return json.dumps({key: asdict(state) for key, state in states.items()}, sort_keys=True)


def retry_states_from_json(text: str | None) -> dict[str, RetryState]:
    return {key: RetryState(**state) for key, state in json.loads(text or "{}").items()}
