"""What a plan reads of Stripe to tell which product each row is where the pipeline's state
can't: the account's products by `adopt.metadata_key` (listed once, 100 a request), and the
products rows would adopt (one request per 100). The rules themselves are the planner's
(`core/planner.py`); `migrate` reads the products to adopt with its backup instead."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pandas as pd

from stripe_sync.core.checkpoints import Checkpoint
from stripe_sync.core.planner import (
    Action,
    ActionKind,
    PlanOptions,
    needs_listing,
    products_by_metadata,
    products_to_settle,
    settle_adoptions,
)
from stripe_sync.core.state import StateStore
from stripe_sync.core.stripe_api import StripeApi
from stripe_sync.core.validation import plan_frame


class AdoptionReads:
    """Stripe as adoption needs it, the API opened at the first read (`open_api`), so a plan
    with nothing to adopt sends no request."""

    def __init__(self, open_api: Callable[[], StripeApi]):
        self._open_api = open_api
        self._api: StripeApi | None = None
        self._listed: dict[str, list[str]] | None = None

    @property
    def api(self) -> StripeApi:
        if self._api is None:
            self._api = self._open_api()
        return self._api

    def by_metadata(
        self, validated: pd.DataFrame, checkpoints: Mapping[str, Checkpoint], options: PlanOptions
    ) -> dict[str, list[str]]:
        """Catalog id -> the products whose `adopt.metadata_key` holds it, when some valid row
        of `validated` has no checkpoint (else nothing is listed); the account is listed once."""
        valid = validated.loc[validated["reasons"].map(len) == 0, "cms_id"]
        if not needs_listing(valid, checkpoints, options):
            return {}
        if self._listed is None:
            listed = self.api.every_product()
            self._listed = products_by_metadata(listed, options.adopt_metadata_key)
        return self._listed

    def settled(self, actions: Sequence[Action]) -> list[Action]:
        """The actions with their adoptions settled against the products as Stripe has them
        (each product to adopt read, and the row's own id in case that one is gone)."""
        adopting = [a for a in actions if a.kind is ActionKind.ADOPT]
        if not adopting:
            return list(actions)
        found = {p["id"]: p for p in self.api.list_products(products_to_settle(adopting))}
        return settle_adoptions(actions, found)


def settled_plan(
    validated: pd.DataFrame,
    batches: Sequence[str],
    state: StateStore,
    options: PlanOptions,
    reads: AdoptionReads,
) -> dict[str, list[Action]]:
    """The plan of each batch as `migrate` makes it, adoptions settled: what `plan` and the
    UI's dry run show."""
    saved = {batch: state.checkpoints(batch) for batch in batches}  # read once
    every = {cms_id: c for checkpoints in saved.values() for cms_id, c in checkpoints.items()}
    by_metadata = reads.by_metadata(validated, every, options)
    plan = plan_frame(validated, batches, saved.__getitem__, options, by_metadata)
    return {batch: reads.settled(actions) for batch, actions in plan.items()}
