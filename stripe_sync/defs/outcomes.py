"""How a run ended, recorded by the run itself: run tags the UI shows and the CLI reads.

`stripe_sync/outcome` holds a `RunOutcome`; `stripe_sync/outcome_detail` the sentence that
says why. When several steps record one, the gravest stays. A run without the tag ended as
Dagster says: succeeded (ok), or failed for another reason (counted as failed batches).
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg

from stripe_sync.core.errors import CatalogError, CatalogFailure, ConfigError
from stripe_sync.core.secrets import redact
from stripe_sync.defs.dagster_compat import interrupts_deferred, tag_run

OUTCOME_TAG = "stripe_sync/outcome"
DETAIL_TAG = "stripe_sync/outcome_detail"
_DETAIL_CHARACTERS = 500


class RunOutcome(enum.StrEnum):
    """How a run ended, from the mildest to the gravest."""

    OK = "ok"
    FAILED_BATCHES = "failed_batches"  # some products or batches failed: rerun them
    WRONG_CONFIGURATION = "wrong_configuration"  # a setting must change first
    STOPPED = "stopped"  # Ctrl+C, SIGTERM, or terminated in the UI
    KEY_REFUSED = "key_refused"  # Stripe refused the key: no further run can succeed

    @property
    def stops_migration(self) -> bool:
        """Whether no further run of the same command may start after this one."""
        return self in (RunOutcome.STOPPED, RunOutcome.KEY_REFUSED)

    @property
    def _gravity(self) -> int:
        return list(RunOutcome).index(self)


@dataclass(frozen=True)
class RecordedOutcome:
    outcome: RunOutcome
    detail: str = ""


def record_outcome(context: dg.OpExecutionContext, outcome: RunOutcome, detail: str) -> None:
    """Tag the step's run with `outcome`, unless a graver one is there already."""
    run = context.instance.get_run_by_id(context.run.run_id)
    current = run.tags.get(OUTCOME_TAG) if run is not None else None
    if current is not None and RunOutcome(current)._gravity >= outcome._gravity:
        return
    tags = {OUTCOME_TAG: outcome.value, DETAIL_TAG: redact(detail)[:_DETAIL_CHARACTERS]}
    tag_run(context.instance, context.run.run_id, tags)


def outcome_of(instance: dg.DagsterInstance, run_id: str, *, succeeded: bool) -> RecordedOutcome:
    """How a finished run ended (see the module docstring)."""
    run = instance.get_run_by_id(run_id)
    tags = run.tags if run is not None else {}
    if OUTCOME_TAG in tags:
        return RecordedOutcome(RunOutcome(tags[OUTCOME_TAG]), tags.get(DETAIL_TAG, ""))
    return RecordedOutcome(RunOutcome.OK if succeeded else RunOutcome.FAILED_BATCHES)


@contextlib.contextmanager
def step_outcome(context: dg.OpExecutionContext) -> Iterator[None]:
    """Around a step's work: a configuration problem fails the step with its one sentence (no
    traceback) and records `wrong_configuration`; so does a database that stayed away past
    the retry deadline, recorded as `failed_batches` (the next run may find it back); a stop
    records `stopped` and goes on."""
    try:
        yield
    except (ConfigError, CatalogError) as error:
        outage = isinstance(error, CatalogFailure) and error.retryable
        outcome = RunOutcome.FAILED_BATCHES if outage else RunOutcome.WRONG_CONFIGURATION
        record_outcome(context, outcome, str(error))
        raise dg.Failure(str(error)) from None
    except (dg.DagsterExecutionInterruptedError, KeyboardInterrupt):
        with interrupts_deferred():  # a second Ctrl+C must not leave the run looking failed
            record_outcome(context, RunOutcome.STOPPED, "stopped on request")
        raise
