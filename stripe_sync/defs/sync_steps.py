"""What the Stripe steps of a run share: the run's `BatchSync`, how far it is, a dry run's
plan, and how the step ends when the sync stopped."""

import time

import dagster as dg
import pandas as pd

from stripe_sync.core.adoption import AdoptionReads, settled_plan
from stripe_sync.core.applier import Progress
from stripe_sync.core.mapping import FieldMapping
from stripe_sync.core.plan_output import PlanSummary
from stripe_sync.core.planner import PlanOptions
from stripe_sync.core.progress import RunProgress
from stripe_sync.core.state import StateStore, TrackedCatalog
from stripe_sync.core.sync import BatchSync, StepResult
from stripe_sync.core.wording import counted
from stripe_sync.defs.dagster_compat import interrupts_deferred
from stripe_sync.defs.outcomes import RunOutcome, record_outcome
from stripe_sync.defs.resources import StripeResource
from stripe_sync.defs.undelivered import InstanceUndelivered

PROGRESS_EVERY_S = 2.0


def batch_sync(
    context, api, source: TrackedCatalog, stripe: StripeResource, progress: RunProgress
) -> BatchSync:
    state, state_retries = source.state, source.retries
    return BatchSync(
        api,
        state,
        context.run.run_id,
        max_in_flight=stripe.in_flight(api),
        on_progress=_progress_reporter(context, progress),
        shielded=interrupts_deferred,
        undelivered=InstanceUndelivered(context),
        catalog_retries=state_retries,
    )


def _fail_if_undelivered(context: dg.AssetExecutionContext, result: StepResult) -> None:
    """The catalog was down for longer than the retry deadline after Stripe's work: the
    results are kept in the run's event log, the batch fails and says so."""
    if result.undelivered is None:
        return
    message = (
        f"The catalog was unreachable ({result.undelivered}): the Stripe results of "
        f"{counted(len(result.applied), 'product')} are kept in this run and written back by "
        "the next run, before anything else and with no Stripe request for them."
    )
    record_outcome(context, RunOutcome.FAILED_BATCHES, message)
    raise dg.Failure(message, metadata=result.summary())


def observe_plan(
    context: dg.AssetExecutionContext,
    validated: pd.DataFrame,
    state: StateStore,
    options: PlanOptions,
    mapping: FieldMapping,
    reads: AdoptionReads,
) -> None:
    """A dry run: the plan as an observation, not a materialization. Nothing downstream runs
    (no prices step, no verification reading Stripe), and the batch's last sync stays its
    latest. Stripe is read only where a row may adopt a product (`reads`)."""
    plan = settled_plan(validated, context.partition_keys, state, options, reads)
    summary = PlanSummary(mapping=mapping)
    for batch, actions in plan.items():
        summary.add(batch, actions)
    planned = {"dagster/row_count": summary.products, **summary.changes}
    context.log.info(f"dry run: {planned}")
    context.log_event(
        dg.AssetObservation(
            asset_key=context.asset_key,
            metadata={
                **planned,
                "dry_run": True,
                "plan": dg.MetadataValue.md(summary.to_markdown()),
            },
        )
    )


def stop_or_fail(context: dg.AssetExecutionContext, result: StepResult) -> None:
    """After the finished work was written back (or kept for the next run): record why the run
    stops, then pass an interruption on, or fail the step."""
    stopped = result.stopped
    if stopped is None or isinstance(stopped.__cause__, Exception):
        # No stop, or an error (a database away past its deadline): the Stripe results kept
        # for the next run are what the step says first.
        _fail_if_undelivered(context, result)
    if stopped is None:
        return
    if stopped.fatal:
        message = (
            f"{stopped}: the run stopped; finished products were written back. Check "
            "STRIPE_SECRET_KEY and its permissions."
        )
        record_outcome(context, RunOutcome.KEY_REFUSED, message)
        raise dg.Failure(message)
    if isinstance(stopped.__cause__, Exception):  # an error, not a stop: the step fails of it
        raise stopped.__cause__
    record_outcome(context, RunOutcome.STOPPED, str(stopped))
    if stopped.__cause__ is not None:
        raise stopped.__cause__
    raise dg.Failure(f"{stopped}: the run stopped; finished products were written back.")


def _progress_reporter(context: dg.AssetExecutionContext, run_progress: RunProgress):
    """Every row settled goes to `run_progress`; a log line every few seconds (each is a
    write to the run's event log)."""
    last = [0.0]

    def report(progress: Progress) -> None:
        run_progress.run_progressed(progress.settled)
        now = time.monotonic()
        if progress.done and (now - last[0] >= PROGRESS_EVERY_S or progress.done == progress.total):
            last[0] = now
            context.log.info(progress.describe())

    return report
