"""The plan of a migration: what `migrate` would do to every product, written nowhere."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack

from stripe_sync.core.adoption import AdoptionReads, settled_plan
from stripe_sync.core.contract import catalog_frame
from stripe_sync.core.plan_output import PlanSummary
from stripe_sync.core.validation import validate_batch
from stripe_sync.defs.partitions import batch_partitions
from stripe_sync.defs.run_options import RunOptions
from stripe_sync.factory import opened_catalog, opened_stripe_api, validation_rules
from stripe_sync.operations.instance import dagster_home, open_instance
from stripe_sync.settings.model import Settings


def plan(
    settings: Settings,
    options: RunOptions,
    summary: PlanSummary,
    *,
    say: Callable[[str], None] = print,
) -> PlanSummary:
    """What `migrate` would do, batch by batch, into `summary`: reads the catalog and the
    checkpoints (no catalog write, no partition registered), and Stripe only where a row may
    adopt a product the account holds (the listing `adopt.metadata_key` needs, the products
    to adopt). `say` is told once if a database must be waited for (a failover)."""
    instance = open_instance(dagster_home(settings))
    rules = validation_rules(settings, skip_validation=options.skip_validation)
    plan_options = options.plan_options(settings)
    with ExitStack() as stack:
        stripe = AdoptionReads(lambda: stack.enter_context(opened_stripe_api(settings)))
        with opened_catalog(settings, on_waiting=say) as source:
            registered = instance.get_dynamic_partitions(batch_partitions.name)
            # The batches registration would give the new rows, kept in memory only.
            registration = source.registration(registered, settings.sync.batch_size)
            for batch in dict.fromkeys([*registered, *registration.keys]):
                members = [*source.state.members(batch), *registration.members(batch)]
                rows, _deleted_rows_prices = source.read_batch(batch, members)
                validated = validate_batch(catalog_frame(rows), rules)
                planned = settled_plan(validated, [batch], source.state, plan_options, stripe)
                summary.add(batch, planned[batch])
    return summary
