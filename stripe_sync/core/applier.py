"""Apply: actions -> the fewest Stripe requests that bring each product to its desired state.

Two phases, one per Stripe asset:

- Products. CREATE is one request: the product with `default_price_data`; if Stripe
  says the id exists (an earlier run created it and never wrote back), it reads the
  product and continues as RECONCILE. Where the global rate limit leaves room beyond
  the `POST /v1/products` endpoint's (live mode), a share of the creates takes a second
  route over two other endpoints: the price with `product_data` (it makes the product),
  then the product's update with the rest and its default price
  (`best_two_request_share`). UPDATE sends only the changed fields, in one request.
  RECONCILE reads the product (with its default price) and sends what differs.
- Prices, for the products whose amount or currency changed: create the new price
  (or find it by its lookup key), make it the default, then archive the old one, in
  that order (Stripe refuses to archive a default price).

Every write carries an idempotency key, the same for each retry of a call, so a retry of
a write that Stripe executed replays its answer. Across runs, deterministic product ids
and price lookup keys (unique to product, currency and amount) do that work: a step
repeated after a crash finds what the first attempt made instead of making it twice.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import TypeVar

from stripe_sync.core.compare import field_differs, is_desired_price
from stripe_sync.core.errors import ErrorKind, StripeFailure
from stripe_sync.core.identity import (
    MANAGED_BY,
    PRODUCT_FIELDS,
    DesiredPrice,
    DesiredProduct,
    idempotency_key,
    stripe_product_id,
)
from stripe_sync.core.planner import Action, ActionKind
from stripe_sync.core.progress import Tally
from stripe_sync.core.stripe_api import StripeApi

Item = TypeVar("Item")
# How often `should_stop` is asked while every slot is taken: a stop that the caller defers
# raises nothing here, so a wait for a product to finish must not outlast it.
STOP_POLL_S = 0.1


class Result:
    """What happened to a row (the report's vocabulary)."""

    CREATED = "created"
    ADOPTED = "adopted"  # an existing product brought under management
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    ARCHIVED = "archived"  # deleted from the catalog, archived in Stripe (mirror mode)
    ORPHANED = "orphaned"  # deleted from the catalog, left live in Stripe (mirror off)
    INVALID = "invalid"
    HELD = "held"  # valid, but which Stripe product it is can't be told: nothing written
    FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    cms_id: str
    action: ActionKind
    result: str
    stripe_product_id: str | None = None
    stripe_price_id: str | None = None
    sync_hash: str | None = None
    error: str | None = None
    price_pending: bool = False  # the prices phase still has to give it a new default price
    # (with a prices model: bring all its prices in line)
    # Made by this run's request: Stripe has its default price and no other.
    made_here: bool = False
    # With a prices model: the product's prices this row made, archived, or found as wanted.
    prices_created: int = 0
    prices_archived: int = 0
    prices_unchanged: int = 0
    requests: int = 0  # Stripe HTTP requests this row cost in this phase, retries included
    notes: tuple[str, ...] = ()  # the plan's notes for the report's warnings

    @property
    def sync_status(self) -> str:
        """The row's write-back status (a held row is never written back)."""
        return {Result.INVALID: "invalid", Result.FAILED: "failed", Result.HELD: "held"}.get(
            self.result, "synced"
        )


class ApplyStopped(Exception):
    """The run stopped early: Stripe refused the key, or the process was told to stop.

    `finished` holds the outcomes of every product that got done, to be written back.
    """

    def __init__(self, reason: str, finished: list[Outcome], *, fatal: bool = False):
        super().__init__(reason)
        self.finished = finished
        self.fatal = fatal


@dataclass
class Progress:
    """How far a step's Stripe work is (`done` of `total` rows that need a request), and
    what every row of the step came to so far, the rows that needed none included."""

    done: int
    total: int
    started: float
    settled: Tally = field(default_factory=Tally)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        return (self.total - self.done) / self.rate if self.rate else None

    def describe(self) -> str:
        eta = f"{self.eta_s:.0f} s" if self.eta_s is not None else "?"
        return f"{self.done}/{self.total} products, {self.rate:.1f}/s, ETA {eta}"


def best_two_request_share(global_rate: float, endpoint_rate: float) -> float:
    """The share of new products to create with two requests (`POST /v1/prices` with
    `product_data`, then `POST /v1/products/{id}`) instead of one (`POST /v1/products`) that
    makes the most products per second: the one-request route fills its endpoint's budget,
    the other route what the global budget leaves, two requests a product, up to its
    endpoints' budget. 0 where the global budget binds first (test mode: 1 request each)."""
    one = min(endpoint_rate, global_rate)
    two = min(endpoint_rate, (global_rate - one) / 2)
    return two / (one + two)


class Applier:
    """Applies actions with up to `max_in_flight` products in progress at once."""

    def __init__(
        self,
        stripe_api: StripeApi,
        *,
        max_in_flight: int = 8,
        on_progress: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        two_request_share: float | None = None,
    ):
        """`two_request_share`: of the creates, those taking the two-request route; None
        decides it from the throttle's budgets."""
        self._stripe = stripe_api
        self._max_in_flight = max_in_flight
        self._on_progress = on_progress
        self._should_stop = should_stop
        # Keys are scoped to this applier (one step of one run): its retries replay, but the
        # same write later (a repair of the same drift within Stripe's 24 h key lifetime)
        # is a new write, not the replay of an old answer.
        self._key_scope = uuid.uuid4().hex[:12]
        self._two_request_share = (
            best_two_request_share(*stripe_api.rates)
            if two_request_share is None
            else two_request_share
        )
        self._creates = itertools.count()
        self._prices_before: Mapping[str, list[dict]] = {}

    def apply_products(self, actions: Iterable[Action]) -> list[Outcome]:
        """Phase one: every action's product; outcomes for the rows it got to.

        Rows not started because of a stop are left out: they stay as they were in the
        catalog and the next run picks them up.
        """
        immediate, stripe_work = [], []
        for action in actions:
            outcome = _without_request(action)
            if outcome is None:
                stripe_work.append(action)
            else:
                immediate.append(outcome)
        try:
            return immediate + self._run(stripe_work, self._apply_product, immediate)
        except ApplyStopped as stopped:
            stopped.finished[:0] = immediate
            raise

    def apply_prices(
        self,
        pending: Iterable[tuple[Outcome, DesiredProduct]],
        prices_before: Mapping[str, list[dict]] | None = None,
    ) -> list[Outcome]:
        """Phase two: a new default price for each outcome left `price_pending` (with a prices
        model: all its prices in line; `prices_before`: each product's prices as already read,
        by product id, so they are not read again)."""
        self._prices_before = prices_before or {}
        return self._run(list(pending), self._reprice)

    def _key(self, operation: str, object_id: str, params: dict) -> str:
        return idempotency_key(f"{operation}-{self._key_scope}", object_id, params)

    # --- products -----------------------------------------------------------------------

    def _apply_product(self, action: Action) -> Outcome:
        try:
            if action.kind is ActionKind.CREATE:
                return replace(self._create(action), notes=action.notes)
            if action.kind is ActionKind.ADOPT:
                return self._adopt(action)
            if action.kind is ActionKind.UPDATE:
                return self._update(action)
            if action.kind is ActionKind.ARCHIVE:
                return self._archive(action)
            return self._reconcile(action)
        except StripeFailure as failure:
            if failure.kind is ErrorKind.FATAL:
                raise
            return Outcome(action.cms_id, action.kind, Result.FAILED, error=failure.message)

    def _create(self, action: Action) -> Outcome:
        if self._takes_two_requests():
            return self._create_through_price(action)
        desired = action.desired
        params = {
            "id": desired.stripe_id,
            **desired.product_fields(),
            "default_price_data": desired.price_fields(),
        }
        try:
            product = self._stripe.create_product(
                params, self._key("create-product", desired.stripe_id, params)
            )
        except StripeFailure as failure:
            if failure.code != "resource_already_exists":
                raise
            return self._reconcile(action)
        return Outcome(
            action.cms_id,
            action.kind,
            Result.CREATED,
            desired.stripe_id,
            product["default_price"],
            desired.sync_hash,
            price_pending=_more_price_work(desired),
            made_here=True,
            prices_created=1 if desired.prices else 0,
        )

    def _takes_two_requests(self) -> bool:
        """Whether the next create takes the two-request route: evenly spread, at its share."""
        n = next(self._creates)  # thread-safe: the GIL makes next() on a count atomic
        share = self._two_request_share
        return math.floor((n + 1) * share) > math.floor(n * share)

    def _create_through_price(self, action: Action) -> Outcome:
        """The two-request create: the price makes the product (`product_data` carries its id,
        name, active and metadata), then one update sets the rest and the default price. The
        content hash comes with the update, so a product stopped halfway never looks synced;
        the next run finds it (custom id, price lookup key) and finishes it as RECONCILE."""
        desired = action.desired
        fields = desired.product_fields()
        metadata = dict(fields["metadata"])
        sync_hash = metadata.pop("sync_hash")
        params = {
            "product_data": {
                "id": desired.stripe_id,
                "name": fields["name"],
                "active": fields["active"],
                "metadata": metadata,
            },
            **desired.price_fields(),
            "lookup_key": desired.price_lookup_key(),
        }
        try:
            price = self._stripe.create_price(
                params, self._key("create-price", desired.stripe_id, params)
            )
        except StripeFailure as failure:
            if failure.code != "resource_already_exists" and not _lookup_key_taken(failure):
                raise
            return self._reconcile(action)
        rest = {name: fields[name] for name in ("description", "images") if fields.get(name)} | {
            "default_price": price["id"],
            "metadata": {"sync_hash": sync_hash},
        }
        made = Outcome(
            action.cms_id,
            action.kind,
            Result.CREATED,
            desired.stripe_id,
            price["id"],
            sync_hash,
            price_pending=_more_price_work(desired),
            made_here=True,
            prices_created=1 if desired.prices else 0,
        )
        try:
            self._stripe.update_product(
                desired.stripe_id, rest, self._key("update-product", desired.stripe_id, rest)
            )
        except StripeFailure as failure:
            if failure.kind is ErrorKind.FATAL:
                raise
            # The product exists: recorded as made, failed, for the next run to finish.
            return replace(made, result=Result.FAILED, sync_hash=None, error=failure.message)
        return made

    def _adopt(self, action: Action) -> Outcome:
        """One product update brings the product under management: the pipeline's metadata
        (Stripe merges it with the product's own) and the fields that differ. Its default
        price stays when it is the catalog's; else the prices step gives it one (an active
        price of the product that is, or a new one) and archives the old default, as for a
        price change, once the product's prices are backed up."""
        desired, product = action.desired, action.adopted
        wanted = desired.product_fields()
        params: dict = {
            name: _unset_empty(wanted.get(name))
            for name in PRODUCT_FIELDS
            if name != "metadata" and field_differs(name, product, wanted)
        }
        default = product.get("default_price") or {}
        pending = bool(desired.prices) or not is_desired_price(default, desired)
        params["metadata"] = dict(wanted["metadata"])
        if pending:
            params["metadata"].pop("sync_hash")  # it comes with the new default price
        self._stripe.update_product(
            desired.stripe_id, params, self._key("adopt-product", desired.stripe_id, params)
        )
        return Outcome(
            action.cms_id,
            action.kind,
            Result.ADOPTED,
            desired.stripe_id,
            default.get("id"),
            desired.sync_hash,
            price_pending=pending,
        )

    def _archive_price(self, price_id: str, *, missing_ok: bool = False) -> None:
        archive = {"active": False}
        try:
            self._stripe.update_price(
                price_id, archive, self._key("archive-price", price_id, archive)
            )
        except StripeFailure as failure:
            if not (missing_ok and failure.code == "resource_missing"):
                raise

    def _update(self, action: Action) -> Outcome:
        try:
            return self._write_fields(action, action.state.stripe_price_id)
        except StripeFailure as failure:
            if failure.code != "resource_missing":
                raise
            # Gone from Stripe (deleted by hand): start again from the catalog's truth.
            return self._create(_anew(action))

    def _reconcile(self, action: Action) -> Outcome:
        desired = action.desired
        try:
            product = self._stripe.retrieve_product(desired.stripe_id)
        except StripeFailure as failure:
            if failure.code != "resource_missing":
                raise
            return self._create(_anew(action))
        wanted = desired.product_fields()
        # Fields sent anyway (all of them on a forced resync), then whatever differs.
        changes = tuple(
            name
            for name in PRODUCT_FIELDS
            if name in action.fields or field_differs(name, product, wanted)
        )
        default_price = product.get("default_price") or {}
        # With a prices model, the prices phase reads all the product's prices.
        if desired.prices or not is_desired_price(default_price, desired):
            changes += ("price",)
        elif action.state.stripe_price_id not in (None, default_price["id"]):
            # The default changed but the old one was not archived (a stop in between).
            self._archive_price(action.state.stripe_price_id, missing_ok=True)
        return self._write_fields(replace(action, fields=changes), default_price.get("id"))

    def _archive(self, action: Action) -> Outcome:
        product_id = action.state.stripe_product_id
        archive = {"active": False}
        try:
            self._stripe.update_product(
                product_id, archive, self._key("archive-product", product_id, archive)
            )
        except StripeFailure as failure:
            if failure.code != "resource_missing":  # deleted by hand: nothing left to archive
                raise
        return Outcome(
            action.cms_id,
            action.kind,
            Result.ARCHIVED,
            product_id,
            action.state.stripe_price_id,
            action.state.sync_hash,
        )

    def _write_fields(self, action: Action, current_price_id: str | None) -> Outcome:
        """One product update with the changed fields; none if only the price changed."""
        desired = action.desired
        wanted = desired.product_fields()
        fields = [name for name in action.fields if name in PRODUCT_FIELDS]
        if fields:
            params: dict = {
                name: _unset_empty(wanted.get(name)) for name in fields if name != "metadata"
            }
            metadata = (
                dict(wanted["metadata"])
                if "metadata" in fields
                else {"sync_hash": desired.sync_hash}
            )
            if action.reprice:
                metadata.pop("sync_hash")  # the new content hash comes with the new default price
            if metadata:
                params["metadata"] = metadata
            self._stripe.update_product(
                desired.stripe_id,
                params,
                self._key("update-product", desired.stripe_id, params),
            )
        if action.kind is ActionKind.CREATE:
            result = Result.CREATED  # made by an earlier run that never wrote back
        else:
            result = Result.UPDATED if action.fields else Result.UNCHANGED
        return Outcome(
            action.cms_id,
            action.kind,
            result,
            desired.stripe_id,
            current_price_id,
            desired.sync_hash,
            price_pending=action.reprice,
            prices_unchanged=0 if action.reprice else len(desired.prices),
        )

    # --- prices -------------------------------------------------------------------------

    def _reprice(self, item: tuple[Outcome, DesiredProduct]) -> Outcome:
        outcome, desired = item
        if desired.prices:
            return self._settle_prices(outcome, desired)
        try:
            # An adopted product's own price that is the catalog's is reused, never made again.
            current = self._prices_before.get(desired.stripe_id, [])
            reusable = [p["id"] for p in current if is_desired_price(p, desired)]
            new_price = reusable[0] if reusable else self._ensure_price(desired)
            params = {"default_price": new_price, "metadata": {"sync_hash": desired.sync_hash}}
            self._stripe.update_product(
                desired.stripe_id,
                params,
                self._key("update-product", desired.stripe_id, params),
            )
            old_price = outcome.stripe_price_id
            if old_price and old_price != new_price:
                self._archive_price(old_price)
        except StripeFailure as failure:
            if failure.kind is ErrorKind.FATAL:
                raise
            return replace(
                outcome, result=Result.FAILED, error=failure.message, price_pending=False
            )
        return replace(
            outcome, result=_repriced(outcome), stripe_price_id=new_price, price_pending=False
        )

    def _ensure_price(self, desired: DesiredProduct) -> str:
        """The id of an active price for the desired amount: found by lookup key or created."""
        lookup_key = desired.price_lookup_key()
        params = {"product": desired.stripe_id, **desired.price_fields(), "lookup_key": lookup_key}
        try:
            return self._stripe.create_price(
                params, self._key("create-price", desired.stripe_id, params)
            )["id"]
        except StripeFailure as failure:
            if not _lookup_key_taken(failure):
                raise
        price = self._stripe.price_by_lookup_key(lookup_key)
        if not price["active"]:
            reactivate = {"active": True}
            self._stripe.update_price(
                price["id"],
                reactivate,
                self._key("reactivate-price", price["id"], reactivate),
            )
        return price["id"]

    def _settle_prices(self, outcome: Outcome, desired: DesiredProduct) -> Outcome:
        """With a prices model: every desired price active (found, reactivated or made), the
        default the product's (with the new content hash), then every other price of the
        pipeline's archived, except those of quarantined rows. A product this run made has
        its default price only: it takes one request per further price and no read."""
        product_id = desired.stripe_id
        try:
            if outcome.made_here:
                for price in desired.prices[1:]:
                    self._price_of(desired, price, [])
                if desired.prices[0].nickname:
                    self._set_nickname(outcome.stripe_price_id, desired.prices[0].nickname)
                return replace(
                    outcome,
                    price_pending=False,
                    prices_created=outcome.prices_created + len(desired.prices) - 1,
                )
            current = self._prices_before.get(product_id)
            if current is None:
                current = self._stripe.prices_of(product_id)
            found, taken = [], set()
            for price in desired.prices:
                price_id, made = self._price_of(desired, price, current, taken)
                found.append((price_id, made))
                taken.add(price_id)
            ids = [price_id for price_id, _ in found]
            params = {"default_price": ids[0], "metadata": {"sync_hash": desired.sync_hash}}
            self._stripe.update_product(
                product_id, params, self._key("update-product", product_id, params)
            )
            archived = 0
            for price in current:
                # The old default goes too (an adopted product's own), as a price change's does.
                retired = _retired(price, desired) or price["id"] == outcome.stripe_price_id
                if price["active"] and price["id"] not in ids and retired:
                    self._archive_price(price["id"])
                    archived += 1
        except StripeFailure as failure:
            if failure.kind is ErrorKind.FATAL:
                raise
            return replace(
                outcome, result=Result.FAILED, error=failure.message, price_pending=False
            )
        made = sum(created for _, created in found)
        return replace(
            outcome,
            result=_repriced(outcome),
            stripe_price_id=ids[0],
            price_pending=False,
            prices_created=outcome.prices_created + made,
            prices_archived=archived,
            prices_unchanged=len(found) - made,
        )

    def _price_of(
        self,
        desired: DesiredProduct,
        price: DesiredPrice,
        current: list[dict],
        taken: set[str] = frozenset(),
    ) -> tuple[str, bool]:
        """The id of the product's active price for a desired one, found among `current`
        (reactivated, its nickname set, if need be) or made; and whether it was made. An
        active price of the product's own (an adopted product's) with the same content is the
        row's too, once (not one of `taken`), and gets the pipeline's metadata."""
        # An active one first: an archived copy of it may exist too.
        found = next(
            (p for p in sorted(current, key=lambda p: not p["active"]) if price.matches(p)), None
        )
        changes: dict[str, object] = {}
        if found is None:
            found = next(
                (
                    p
                    for p in current
                    if p["active"]
                    and p["id"] not in taken
                    and not _managed(p)
                    and price.same_content(p)
                ),
                None,
            )
            if found is not None:
                changes["metadata"] = desired.price_metadata(price)
        if found is None:
            params = desired.further_price_fields(price)
            try:
                made = self._stripe.create_price(
                    params, self._key("create-price", desired.stripe_id, params)
                )
                return made["id"], True
            except StripeFailure as failure:
                if not _lookup_key_taken(failure):
                    raise
            found = self._stripe.price_by_lookup_key(params["lookup_key"])
        if not found["active"]:
            changes["active"] = True
        if (found.get("nickname") or None) != price.nickname:
            changes["nickname"] = price.nickname or ""
        if changes:
            self._stripe.update_price(
                found["id"], changes, self._key("update-price", found["id"], changes)
            )
        return found["id"], False

    def _set_nickname(self, price_id: str, nickname: str) -> None:
        params = {"nickname": nickname}
        self._stripe.update_price(price_id, params, self._key("update-price", price_id, params))

    # --- running ------------------------------------------------------------------------

    def _run(
        self,
        items: list[Item],
        apply_one: Callable[[Item], Outcome],
        settled: Sequence[Outcome] = (),
    ) -> list[Outcome]:
        """`apply_one` over items, `max_in_flight` at a time; stops on a fatal error.
        `settled`: the step's outcomes that needed no request, for the progress."""
        progress = Progress(0, len(items), time.monotonic(), settled_tally(settled))
        if self._on_progress:
            self._on_progress(progress)
        outcomes: list[Outcome] = []
        fatal: StripeFailure | None = None
        unexpected: Exception | None = None  # a bug in one product's work, not Stripe's answer
        lock = threading.Lock()

        def apply_counted(item: Item) -> Outcome:
            before = self._stripe.requests_sent_by_this_thread
            outcome = apply_one(item)
            return replace(outcome, requests=self._stripe.requests_sent_by_this_thread - before)

        def collect(done: set[Future]) -> StripeFailure | None:
            nonlocal unexpected
            first_fatal = None
            for future in done:
                try:
                    outcome = future.result()
                except StripeFailure as failure:
                    first_fatal = first_fatal or failure
                    continue
                except Exception as error:  # noqa: BLE001 - the others' outcomes are still kept
                    unexpected = unexpected or error
                    continue
                with lock:
                    outcomes.append(outcome)
                    progress.done += 1
                    progress.settled += settled_tally([outcome])
                if self._on_progress:
                    self._on_progress(progress)
            return first_fatal

        pending: set[Future] = set()
        interrupt: BaseException | None = None
        with ThreadPoolExecutor(self._max_in_flight, thread_name_prefix="stripe") as pool:
            try:
                for item in items:
                    while (
                        len(pending) >= self._max_in_flight
                        and fatal is unexpected is None
                        and not self._should_stop()
                    ):
                        done, pending = wait(
                            pending, timeout=STOP_POLL_S, return_when=FIRST_COMPLETED
                        )
                        fatal = collect(done)
                    if fatal is not None or unexpected is not None or self._should_stop():
                        break
                    pending.add(pool.submit(apply_counted, item))
            except BaseException as error:  # noqa: BLE001 - a stop the caller does not defer
                interrupt = error
            # Requests in flight finish (each is idempotent); nothing new starts.
            done, _ = wait(pending)
            fatal = fatal or collect(done)
        if interrupt is not None:
            raise ApplyStopped("stopped on request", outcomes) from interrupt
        if unexpected is not None:  # the step fails with it, once what finished is recorded
            raise ApplyStopped(f"failed: {unexpected}", outcomes) from unexpected
        if fatal is not None:
            raise ApplyStopped(f"Stripe refused the key ({fatal.message})", outcomes, fatal=True)
        if len(outcomes) < len(items):
            raise ApplyStopped("stopped on request", outcomes)
        return outcomes


def settled_tally(outcomes: Iterable[Outcome]) -> Tally:
    """What these rows came to, for the progress; a row whose prices are still to be given
    (in the prices step) is not settled yet."""
    return Tally.of_results(o.result for o in outcomes if not o.price_pending)


def _more_price_work(desired: DesiredProduct) -> bool:
    """Whether a product just made with its default price needs more (with a prices model:
    its further prices, or its default's nickname, which `default_price_data` can't carry)."""
    return len(desired.prices) > 1 or bool(desired.prices and desired.prices[0].nickname)


def _repriced(outcome: Outcome) -> str:
    """A row's result once its prices are in line: made or adopted by this run, or updated."""
    return outcome.result if outcome.result in (Result.CREATED, Result.ADOPTED) else Result.UPDATED


def _anew(action: Action) -> Action:
    """A row whose product is gone from Stripe, to be created as the row's own."""
    own = action.desired.known_as(stripe_product_id(action.cms_id))
    return replace(action, kind=ActionKind.CREATE, desired=own)


def _managed(price: dict) -> bool:
    """Whether a Stripe price is the pipeline's (else made by hand, or by another tool)."""
    return (price.get("metadata") or {}).get("managed_by") == MANAGED_BY


def _retired(price: dict, desired: DesiredProduct) -> bool:
    """Whether a price of the product is the pipeline's and no longer wanted: not a
    quarantined row's (left alone) and not made by hand."""
    cms_price_id = (price.get("metadata") or {}).get("cms_price_id")
    return _managed(price) and cms_price_id not in desired.held_prices


def _without_request(action: Action) -> Outcome | None:
    """The outcome of an action that needs no Stripe request; None for one that does."""
    state = action.state
    if action.kind is ActionKind.UNCHANGED:
        result = Result.UNCHANGED
    elif action.kind is ActionKind.ORPHANED:
        result = Result.ORPHANED
    elif action.kind in (ActionKind.INVALID, ActionKind.HELD):
        result = Result.INVALID if action.kind is ActionKind.INVALID else Result.HELD
        return Outcome(action.cms_id, action.kind, result, error="; ".join(action.reasons))
    else:
        return None
    return Outcome(
        action.cms_id,
        action.kind,
        result,
        state.stripe_product_id,
        state.stripe_price_id,
        state.sync_hash,
        prices_unchanged=len(action.desired.prices) if action.desired else 0,
    )


def _lookup_key_taken(failure: StripeFailure) -> bool:
    return "already uses that lookup key" in failure.message


def _unset_empty(value: object) -> object:
    # Stripe unsets a field sent as "" (a description removed in the catalog, no images).
    return "" if value is None or value == [] else value
