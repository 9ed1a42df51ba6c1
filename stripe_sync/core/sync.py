"""One sync of some batches, without Dagster: back up -> apply -> write back -> record state
-> record the outcome.

The two Stripe steps of a run are two calls:

- `sync_products`: plans the batches' rows against their checkpoints, backs up what the plan
  will change, applies the products (create with the default price, update, reconcile,
  archive), writes back the rows that are settled (and the Stripe ids of those whose prices
  are still to come), records their checkpoints and the
  outcome of every row in the ledger.
- `sync_prices`: gives the products of this run's products step whose amount or currency
  changed their new default price, then writes back, records and ledgers the same way.

A stop (Ctrl+C, a run terminated, Stripe refusing the key) never loses finished work: what
finished is written back and recorded before the result says the run stopped. While a step
writes to Stripe and records the answers it runs inside `shielded()`, where the caller defers
every stop (one or several) to the end: the applier asks whether one came, starts nothing new
once it did, and lets the requests in flight finish. The write-back and the checkpoints are
one `StateStore.record` (one transaction where the catalog and the state share a database).
Nor does a catalog outage lose it: when the record still fails after the catalog's retry
deadline, the batch's results go to `Undelivered` (the run's own storage) and the result says
so; the next run records them first (`deliver_kept`, before it reads the catalog), with no
Stripe request for those products.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

import pandas as pd

from stripe_sync.core.adoption import AdoptionReads
from stripe_sync.core.applier import (
    Applier,
    ApplyStopped,
    Outcome,
    Progress,
    Result,
    settled_tally,
)
from stripe_sync.core.backups import Backup, now_iso
from stripe_sync.core.checkpoints import Checkpoint
from stripe_sync.core.contract import WRITE_BACK_COLUMNS, WriteBack
from stripe_sync.core.errors import CatalogFailure, ErrorKind, StripeFailure
from stripe_sync.core.identity import DesiredProduct
from stripe_sync.core.ledger import PRICES, PRODUCTS, outcomes_of_run
from stripe_sync.core.planner import (
    Action,
    ActionKind,
    PlanOptions,
    products_to_settle,
    settle_adoptions,
)
from stripe_sync.core.product_reads import PriceReads, read_pages, read_prices_of
from stripe_sync.core.progress import Tally
from stripe_sync.core.report import RESULTS
from stripe_sync.core.retry import RetryStats
from stripe_sync.core.state import StateStore
from stripe_sync.core.stripe_api import StripeApi
from stripe_sync.core.validation import plan_frame, planning_inputs, records

_NOTHING_NEW = (ActionKind.UNCHANGED, ActionKind.ORPHANED)  # their checkpoints stay as they are
_STATE_COLUMNS = ("stripe_product_id", "stripe_price_id", "sync_status", "sync_error", "sync_hash")


# Runs its body to the end whatever stops arrive meanwhile, and gives it what says whether one
# came (the caller passes the stop on after the body).
Shield = Callable[[], AbstractContextManager[Callable[[], bool]]]


def unshielded() -> AbstractContextManager[Callable[[], bool]]:
    """No shield: nothing defers a stop, and none is ever said to have come."""
    return contextlib.nullcontext(lambda: False)


class Undelivered(Protocol):
    """Where a run keeps the results the catalog could not take (it was down for longer than
    the retry deadline), for the next run to record before anything else. Payloads are JSON."""

    def keep(self, batch: str, payload: dict) -> None: ...
    def kept(self, batches: Sequence[str]) -> list[tuple[str, str, dict]]:
        """(id, batch, payload) of what is kept for these batches and not delivered yet,
        oldest first."""

    def delivered(self, batch: str, kept_ids: Sequence[str]) -> None: ...


@dataclass(frozen=True)
class StepResult:
    """What one Stripe step did to its batches."""

    applied: list[Outcome]  # the outcomes of this step's own work
    final: list[Outcome]  # every row's outcome after this step
    write_backs: int  # catalog requests or statements
    seconds: float
    backups: list[str] = field(default_factory=list)
    stopped: ApplyStopped | None = None  # the run must stop: Stripe refused the key, or told to
    undelivered: str | None = None  # why the results are kept for the next run: the catalog

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.final if o.result == Result.FAILED]

    def tally(self) -> Tally:
        """What every row came to after this step."""
        return settled_tally(self.final)

    def summary(self) -> dict[str, int | float]:
        """Rows by result, Stripe requests, catalog write-back requests and seconds."""
        results = dict.fromkeys(RESULTS, 0)
        for outcome in self.applied:
            results[outcome.result] += 1
        return {
            **results,
            "stripe_requests": sum(o.requests for o in self.applied),
            "catalog_write_back_requests": self.write_backs,
            "seconds": round(self.seconds, 3),
        }


class BatchSync:
    """The Stripe steps of one run over some batches."""

    def __init__(
        self,
        api: StripeApi,
        state: StateStore,
        run_id: str,
        *,
        max_in_flight: int,
        on_progress: Callable[[Progress], None] | None = None,
        shielded: Shield = unshielded,
        undelivered: Undelivered | None = None,
        catalog_retries: RetryStats | None = None,
    ):
        self._api = api
        self._state = state
        self._undelivered = undelivered
        self._catalog_retries = catalog_retries or RetryStats()
        self._checkpoints: dict[str, dict[str, Checkpoint]] = {}  # as planned, by batch
        self._run_id = run_id
        self._max_in_flight = max_in_flight
        self._on_progress = on_progress
        self._shielded = shielded

    def sync_products(
        self, validated: pd.DataFrame, batches: Sequence[str], options: PlanOptions
    ) -> StepResult:
        """The products of the batches' rows, as planned against their checkpoints."""
        started = time.monotonic()
        rows = _rows_by_id(validated)
        try:
            by_metadata = self._by_metadata(validated, batches, options)
            plan = plan_frame(validated, batches, self.checkpoints, options, by_metadata)
            before = self._products_before([a for acts in plan.values() for a in acts])
            # Per batch, as `plan` settles them.
            plan = {batch: settle_adoptions(acts, before) for batch, acts in plan.items()}
            actions = [action for batch_actions in plan.values() for action in batch_actions]
            batch_of = {action.cms_id: batch for batch, acts in plan.items() for action in acts}
            desired = {a.cms_id: a.desired for a in actions if a.desired is not None}
            backups = [
                saved
                for batch, batch_actions in plan.items()
                if (saved := self._back_up(batch, batch_actions, rows, before))
            ]
        except StripeFailure as failure:
            if failure.kind is not ErrorKind.FATAL:
                raise
            # The backup's read is the run's first request: a refused key stops it here.
            refused = ApplyStopped(f"Stripe refused the key ({failure.message})", [], fatal=True)
            return StepResult([], [], 0, time.monotonic() - started, stopped=refused)
        stopped = None
        with self._shielded() as stop_requested:
            applier = Applier(
                self._api,
                max_in_flight=self._max_in_flight,
                on_progress=self._on_progress,
                should_stop=stop_requested,
            )
            try:
                outcomes = applier.apply_products(actions)
            except ApplyStopped as error:
                outcomes, stopped = error.finished, error
            ledgers = self._ledgers(
                batches, outcomes, batch_of, validated, time.monotonic() - started
            )
            write_backs, undelivered = self._record(
                PRODUCTS, outcomes, rows, batch_of, desired, ledgers
            )
        seconds = time.monotonic() - started
        return StepResult(outcomes, outcomes, write_backs, seconds, backups, stopped, undelivered)

    def sync_prices(self, validated: pd.DataFrame, batches: Sequence[str]) -> StepResult:
        """New default prices for the products this run's products step left pending."""
        started = time.monotonic()
        desired = {cms_id: product for cms_id, product, *_ in planning_inputs(validated)}
        records_of_run = {
            batch: record
            for batch in batches
            if (record := outcomes_of_run(self._state, PRODUCTS, batch, self._run_id)) is not None
        }
        batch_of = {
            o["cms_id"]: batch
            for batch, record in records_of_run.items()
            for o in record["outcomes"]
        }
        products = [
            Outcome(**{**o, "action": ActionKind(o["action"])})
            for record in records_of_run.values()
            for o in record["outcomes"]
        ]
        # Each as the Stripe product the products step made it (its own id, or one adopted).
        desired.update(
            (o.cms_id, desired[o.cms_id].known_as(o.stripe_product_id))
            for o in products
            if o.price_pending
        )
        pending = [(o, desired[o.cms_id]) for o in products if o.price_pending]
        stopped, unread, reads = None, [], PriceReads({}, {}, {})
        with self._shielded() as stop_requested:
            try:
                pending, reads, unread = self._prices_backed_up(pending, batch_of)
                applier = Applier(
                    self._api, max_in_flight=self._max_in_flight, should_stop=stop_requested
                )
                repriced = applier.apply_prices(pending, reads.prices)
            except ApplyStopped as error:
                repriced, stopped = error.finished, error
            # The backup's reads are the products' own requests too.
            repriced = [
                replace(o, requests=o.requests + reads.requests.get(o.stripe_product_id, 0))
                for o in [*repriced, *unread]
            ]
            by_id = {o.cms_id: o for o in repriced}
            final = [
                replace(by_id[o.cms_id], requests=by_id[o.cms_id].requests + o.requests)
                if o.cms_id in by_id
                else o
                for o in products
            ]
            # None in a dry run: the products step wrote nothing.
            ledgers = (
                self._ledgers(batches, final, batch_of, validated, time.monotonic() - started)
                if records_of_run
                else {}
            )
            for batch, ledger in ledgers.items():  # the products step's retries, carried on
                earlier = records_of_run.get(batch, {})
                ledger["catalog_retries"] += earlier.get("catalog_retries", 0)
                ledger["catalog_longest_outage_s"] = max(
                    ledger["catalog_longest_outage_s"], earlier.get("catalog_longest_outage_s", 0)
                )
            write_backs, undelivered = self._record(
                PRICES, repriced, _rows_by_id(validated), batch_of, desired, ledgers
            )
        seconds = time.monotonic() - started
        return StepResult(
            repriced, final, write_backs, seconds, stopped=stopped, undelivered=undelivered
        )

    def _prices_backed_up(
        self, pending: list[tuple[Outcome, DesiredProduct]], batch_of: dict[str, str]
    ) -> tuple[list[tuple[Outcome, DesiredProduct]], PriceReads, list[Outcome]]:
        """With a prices model: every price of each pending product that existed before this
        run (one read a product, in flight together), saved as each batch's backup before
        any price is written. Returns the pending products whose prices were read (or need
        no read), the reads, and the outcomes of those whose read failed."""
        # With a prices model, or adopted: the product's own prices may be the catalog's.
        existing = [
            (o, d)
            for o, d in pending
            if (d.prices or o.result == Result.ADOPTED) and not o.made_here
        ]
        if not existing:
            return pending, PriceReads({}, {}, {}), []
        reads = read_prices_of(
            self._api, [d.stripe_id for _, d in existing], max_in_flight=self._max_in_flight
        )
        refused = [f for f in reads.failures.values() if f.kind is ErrorKind.FATAL]
        if refused:
            raise ApplyStopped(f"Stripe refused the key ({refused[0].message})", [], fatal=True)
        by_batch: dict[str, dict[str, list[dict]]] = {}
        for outcome, product in existing:
            if product.stripe_id in reads.prices:
                by_batch.setdefault(batch_of[outcome.cms_id], {})[product.stripe_id] = reads.prices[
                    product.stripe_id
                ]
        # Into the products step's backup of the batch (one per run and batch), if it took one.
        taken = {b.batch: b for b in self._state.backups() if b.run_id == self._run_id}
        for batch, prices in by_batch.items():
            backup = taken.get(batch) or Backup(self._run_id, batch, now_iso())
            self._state.save_backup(
                replace(backup, stripe_prices={**backup.stripe_prices, **prices})
            )
        unread = [
            replace(
                outcome,
                result=Result.FAILED,
                error=reads.failures[product.stripe_id].message,
                price_pending=False,
            )
            for outcome, product in existing
            if product.stripe_id in reads.failures
        ]
        kept = [(o, d) for o, d in pending if d.stripe_id not in reads.failures]
        return kept, reads, unread

    def checkpoints(self, batch: str) -> dict[str, Checkpoint]:
        """A batch's checkpoints, read once: the plan's, and the record's when it archives
        (so a record that follows a catalog outage needs no read)."""
        if batch not in self._checkpoints:
            self._checkpoints[batch] = self._state.checkpoints(batch)
        return self._checkpoints[batch]

    # --- the parts -----------------------------------------------------------------------

    def _by_metadata(
        self, validated: pd.DataFrame, batches: Sequence[str], options: PlanOptions
    ) -> dict[str, list[str]]:
        """Catalog id -> the products whose `adopt.metadata_key` holds it (listed when some
        valid row has no checkpoint)."""
        checkpoints = {
            cms_id: c for batch in batches for cms_id, c in self.checkpoints(batch).items()
        }
        return AdoptionReads(lambda: self._api).by_metadata(validated, checkpoints, options)

    def _products_before(self, actions: list[Action]) -> dict[str, dict]:
        """The Stripe products that the actions may change, as they are now, by id: the
        products of every batch read at once. Products to create are read too (1 request per
        100): after `reset --catalog-columns` a "create" may meet a product that existed before
        this run, which rollback must keep; so is the own id of a row that may adopt another
        (created instead when that one is gone)."""
        product_ids = [_product_id(a) for a in actions if a.writes] + products_to_settle(actions)
        found = {}
        for page in read_pages(self._api, product_ids, max_in_flight=self._max_in_flight):
            if page.failure is not None:
                raise page.failure
            found.update((product["id"], product) for product in page.products)
        return found

    def _back_up(
        self, batch: str, actions: list[Action], rows: dict[str, dict], found: dict[str, dict]
    ) -> str | None:
        """Save the batch's rows and Stripe products (`found`: as read before any write) that
        the actions may change."""
        writing = [action for action in actions if action.writes]
        if not writing:
            return None
        product_ids = [_product_id(action) for action in writing]
        backup = Backup(
            run_id=self._run_id,
            batch=batch,
            taken_at=now_iso(),
            catalog_rows=[
                {"id": action.cms_id, **_write_back_columns(rows[action.cms_id])}
                for action in writing
                if action.cms_id in rows
            ],
            # None: not in Stripe before this run (rollback archives what the run made of it).
            stripe_products={product_id: found.get(product_id) for product_id in product_ids},
            actions={action.cms_id: action.change for action in writing},
            products={action.cms_id: _product_id(action) for action in writing},
        )
        return self._state.save_backup(backup)

    def _record(
        self,
        step: str,
        outcomes: Sequence[Outcome],
        rows: dict[str, dict],
        batch_of: dict[str, str],
        desired: dict[str, DesiredProduct],
        ledgers: dict[str, dict],
    ) -> tuple[int, str | None]:
        """Write back what changed for these rows, record their checkpoints (one
        `StateStore.record`) and the step's ledger; returns the requests or statements made,
        and why the results were kept for the next run instead, if they were."""
        write_backs = self._write_backs(outcomes, rows)
        checkpoints = self._checkpoint_changes(batch_of, desired, outcomes)
        try:
            requests = (
                self._state.record(write_backs, checkpoints, batch_of=batch_of)
                if write_backs or checkpoints
                else 0
            )
            for batch, record in ledgers.items():
                self._state.save_outcomes(step, batch, record)
        except CatalogFailure as failure:
            if not failure.retryable or self._undelivered is None:
                raise
            for batch, payload in _payloads(step, write_backs, checkpoints, batch_of, ledgers):
                self._undelivered.keep(batch, payload)
            return 0, str(failure)
        return requests, None

    @staticmethod
    def _write_backs(outcomes: Iterable[Outcome], rows: dict[str, dict]) -> list[WriteBack]:
        """The rows whose write-back values change."""
        now = datetime.now(UTC)
        write_backs = {}
        for outcome in outcomes:
            before = rows.get(outcome.cms_id)
            # Deleted from the catalog: no row to write to; held: nothing is written for it.
            if before is None or outcome.result == Result.HELD:
                continue
            synced = outcome.sync_status == "synced"
            # Its prices still to come (the prices step): only its Stripe ids for now, so a
            # stop before that step leaves a row the next run reconciles, never creates again.
            pending = outcome.price_pending
            row = WriteBack(
                id=outcome.cms_id,
                stripe_product_id=outcome.stripe_product_id or before["stripe_product_id"],
                stripe_price_id=outcome.stripe_price_id or before["stripe_price_id"],
                sync_status=before["sync_status"] if pending else outcome.sync_status,
                sync_error=before["sync_error"] if pending else outcome.error,
                synced_at=now,
                sync_hash=outcome.sync_hash if synced and not pending else before["sync_hash"],
            )
            if any(getattr(row, column) != before[column] for column in _STATE_COLUMNS):
                write_backs.setdefault(row.id, row)
        return list(write_backs.values())

    def _checkpoint_changes(
        self,
        batch_of: dict[str, str],
        desired: dict[str, DesiredProduct],
        outcomes: Iterable[Outcome],
    ) -> dict[str, dict[str, Checkpoint]]:
        """What the outcomes made each row in Stripe, for the next plan to trust."""
        changes: dict[str, dict[str, Checkpoint]] = {}
        for outcome in outcomes:
            batch = batch_of[outcome.cms_id]
            if outcome.result == Result.ARCHIVED:
                kept = self.checkpoints(batch)[outcome.cms_id]
                changes.setdefault(batch, {})[outcome.cms_id] = replace(kept, removed=True)
            elif (
                outcome.sync_status == "synced"
                and outcome.action not in _NOTHING_NEW
                and not outcome.price_pending
            ):
                checkpoint = Checkpoint.of(desired[outcome.cms_id], outcome.stripe_price_id)
                changes.setdefault(batch, {})[outcome.cms_id] = checkpoint
        return changes

    def _ledgers(
        self,
        batches: Sequence[str],
        outcomes: list[Outcome],
        batch_of: dict[str, str],
        validated: pd.DataFrame,
        seconds: float,
    ) -> dict[str, dict]:
        """The ledger record of each batch: its rows' outcomes, requests, time, warnings, and
        the names of the rows the report lists (invalid, failed): an id alone says little."""
        records = {}
        for batch in batches:
            mine = [o for o in outcomes if batch_of[o.cms_id] == batch]
            listed = {
                o.cms_id for o in mine if o.result in (Result.INVALID, Result.HELD, Result.FAILED)
            }
            rows = validated[validated["batch"] == batch]
            records[batch] = {
                "run_id": self._run_id,
                "batch": batch,
                "mode": self._api.mode,
                "requests": sum(o.requests for o in mine),
                "seconds": seconds * len(mine) / max(len(outcomes), 1),
                "outcomes": [asdict(o) for o in mine],
                "warnings": [
                    {"cms_id": cms_id, "warning": warning}
                    for cms_id, warnings in zip(rows["cms_id"], rows["warnings"], strict=True)
                    for warning in warnings
                ]
                + [{"cms_id": o.cms_id, "warning": note} for o in mine for note in o.notes],
                "names": {
                    cms_id: name
                    for cms_id, name in zip(rows["cms_id"], rows["name"], strict=True)
                    if cms_id in listed
                },
                # The step's retried database calls, over all of the run's batches so far.
                **self._catalog_retries.as_metadata("catalog"),
            }
        return records


def deliver_kept(state: StateStore, undelivered: Undelivered, batches: Sequence[str]) -> int:
    """Record the results an earlier run kept during a catalog outage; returns how many
    batches had some. Called before the batches' rows are read, so the plan sees them synced
    and sends nothing to Stripe for them."""
    kept = undelivered.kept(batches)
    for kept_id, batch, payload in kept:
        write_backs, checkpoints, batch_of, ledger = _restored(batch, payload)
        state.record(write_backs, checkpoints, batch_of=batch_of)
        if ledger is not None:
            state.save_outcomes(payload["step"], batch, ledger)
        undelivered.delivered(batch, [kept_id])
    return len(kept)


def _payloads(
    step: str,
    write_backs: list[WriteBack],
    checkpoints: dict[str, dict[str, Checkpoint]],
    batch_of: dict[str, str],
    ledgers: dict[str, dict],
) -> list[tuple[str, dict]]:
    """What a step could not record, per batch, as JSON for `Undelivered.keep`."""
    batches = {batch_of[row.id] for row in write_backs} | set(checkpoints) | set(ledgers)
    return [
        (
            batch,
            json.loads(
                json.dumps(
                    {
                        "step": step,
                        "write_backs": [
                            {"id": row.id, **row.columns()}
                            for row in write_backs
                            if batch_of[row.id] == batch
                        ],
                        "checkpoints": {
                            cms_id: None if checkpoint is None else asdict(checkpoint)
                            for cms_id, checkpoint in checkpoints.get(batch, {}).items()
                        },
                        "ledger": ledgers.get(batch),
                    },
                    default=str,
                )
            ),
        )
        for batch in sorted(batches)
    ]


def _restored(
    batch: str, payload: dict
) -> tuple[list[WriteBack], dict, dict[str, str], dict | None]:
    """(write-backs, checkpoint changes, batch of each row, ledger record) of a batch's
    payload."""
    write_backs = [
        WriteBack(
            **{
                **row,
                "synced_at": None
                if row["synced_at"] is None
                else datetime.fromisoformat(row["synced_at"]),
            }
        )
        for row in payload["write_backs"]
    ]
    checkpoints = {
        cms_id: None if entry is None else Checkpoint(**entry)
        for cms_id, entry in payload["checkpoints"].items()
    }
    batch_of = dict.fromkeys((row.id for row in write_backs), batch)
    return write_backs, {batch: checkpoints}, batch_of, payload["ledger"]


def _product_id(action: Action) -> str:
    return action.desired.stripe_id if action.desired else action.state.stripe_product_id


def _rows_by_id(validated: pd.DataFrame) -> dict[str, dict]:
    # First row per id: rows sharing an id (quarantined as duplicates) share one write-back.
    return {row["cms_id"]: row for row in reversed(records(validated))}


def _write_back_columns(row: dict) -> dict:
    values = {column: row[column] for column in WRITE_BACK_COLUMNS}
    synced_at = values["synced_at"]
    values["synced_at"] = None if pd.isna(synced_at) else pd.Timestamp(synced_at).isoformat()
    return values
