"""`BatchVerify` verifies batches with no Dagster at all: a catalog in PostgreSQL synced into
the Stripe emulator by `BatchSync`, read back by id and compared; repairs go to the state."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from decimal import Decimal

import pandas as pd
import pytest
import stripe

from stripe_sync.backends import open_catalog, open_state
from stripe_sync.core.contract import catalog_frame
from stripe_sync.core.planner import PlanOptions
from stripe_sync.core.retry import RetryPolicy
from stripe_sync.core.state import StateStore
from stripe_sync.core.stripe_api import StripeApi
from stripe_sync.core.sync import BatchSync
from stripe_sync.core.validation import ValidationRules, planning_inputs, validate_batch
from stripe_sync.core.verification import BatchToVerify, BatchVerify, KeyRefused, VerifiedBatch
from stripe_sync.core.verify import PRICE, PRODUCT
from stripe_sync_tests.conftest import TEST_SECRET_KEY, free_port
from stripe_sync_tests.support.tables import every_row

BATCH = "batch-0001"


def stripe_api(api_base: str, secret_key: str = TEST_SECRET_KEY) -> StripeApi:
    """The pipeline's API, without retries (a failure shows at once)."""
    return StripeApi(secret_key, api_base=api_base, retry=RetryPolicy(attempts=1, deadline_s=5))


@dataclass
class Batches:
    """A catalog's batches as validated, the catalog's state, and the pipeline's API."""

    validated: pd.DataFrame
    state: StateStore
    api: StripeApi

    @property
    def keys(self) -> list[str]:
        return list(dict.fromkeys(self.validated["batch"]))

    def sync(self) -> None:
        """Every batch's products into Stripe, as a run's products step makes them."""
        sync = BatchSync(self.api, self.state, "run-1", max_in_flight=4)
        result = sync.sync_products(self.validated, self.keys, PlanOptions())
        assert result.stopped is None and not result.failed

    def verify(self, *, synced: bool = True, api: StripeApi | None = None) -> list[VerifiedBatch]:
        """Every batch's verification (`synced`: whether each was ever synced), with the
        pipeline's API unless `api` is given."""
        to_verify = [
            BatchToVerify(key, list(planning_inputs(rows)), synced)
            for key, rows in self.validated.groupby("batch", sort=False)
        ]
        verify = BatchVerify(api or self.api, self.state, max_in_flight=4, mirror=False)
        return list(verify.verify(to_verify))


@pytest.fixture
def batches(products_table, emulator):
    """`batches(*sizes) -> Batches`: a catalog whose rows p000, p001, ... fill batches
    batch-0001, batch-0002, ... of these sizes, in order; nothing synced yet."""
    opened = []

    def make(*sizes: int) -> Batches:
        keys = [f"batch-{number:04d}" for number, size in enumerate(sizes, 1) for _ in range(size)]
        rows = [
            {
                "id": f"p{n:03d}",
                "name": f"Product {n}",
                "price": Decimal("9.90") + n,
                "currency": "eur",
            }
            for n in range(len(keys))
        ]
        batch_of = {row["id"]: key for row, key in zip(rows, keys, strict=True)}
        table = products_table(rows)
        catalog = open_catalog(
            database_url=table.database_url, supabase_url=None, supabase_key=None, table=table.name
        )
        state = open_state(catalog)
        api = stripe_api(emulator.base_url)
        opened.extend([api, state, catalog])
        read = sorted(every_row(catalog), key=lambda row: row["id"])
        raw = catalog_frame([{"batch": batch_of[row["id"]], **row} for row in read])
        return Batches(validate_batch(raw, ValidationRules()), state, api)

    yield make
    for thing in opened:
        thing.close()


def dashboard(emulator) -> stripe.StripeClient:
    """Stripe as someone in the Dashboard uses it: not through the pipeline."""
    return stripe.StripeClient(TEST_SECRET_KEY, base_addresses={"api": emulator.base_url})


def test_a_batch_as_its_sync_made_it_verifies_with_no_mismatch_in_one_read(batches, emulator):
    catalog = batches(5)
    catalog.sync()
    checkpoints = catalog.state.checkpoints(BATCH)

    [verified] = catalog.verify()

    assert verified.key == BATCH
    assert verified.result.mismatches == () and verified.result.repairs == {}
    assert verified.result.products == 5
    assert verified.requests == 1  # one list request for up to 100 products
    assert catalog.state.checkpoints(BATCH) == checkpoints


def rename(client: stripe.StripeClient, product_id: str) -> None:
    client.v1.products.update(product_id, {"name": "Renamed in the Dashboard"})


def reprice(client: stripe.StripeClient, product_id: str) -> None:
    cheaper = client.v1.prices.create({"product": product_id, "currency": "eur", "unit_amount": 99})
    client.v1.products.update(product_id, {"default_price": cheaper.id})


@pytest.mark.parametrize(
    ("edit", "subject", "field"),
    [(rename, PRODUCT, "name"), (reprice, PRICE, "default_price")],
)
def test_a_product_edited_in_stripe_is_a_mismatch_and_its_checkpoint_is_forgotten(
    batches, emulator, edit, subject, field
):
    catalog = batches(5)
    catalog.sync()
    edit(dashboard(emulator), "cms_p001")

    [verified] = catalog.verify()

    assert [(m.cms_id, m.subject, m.field) for m in verified.result.mismatches] == [
        ("p001", subject, field)
    ]
    assert verified.result.repairs == {"p001": None}
    # Recorded: the next sync reconciles the row with Stripe instead of trusting its hash.
    assert sorted(catalog.state.checkpoints(BATCH)) == ["p000", "p002", "p003", "p004"]


def test_a_batch_never_synced_is_reported_unverified_without_a_read(batches, emulator):
    catalog = batches(5)

    [verified] = catalog.verify(synced=False)

    assert {(m.subject, m.actual, m.note) for m in verified.result.mismatches} == {
        (PRODUCT, "never synced", "run stripe-sync migrate"),
        (PRICE, "never synced", "run stripe-sync migrate"),
    }
    assert verified.requests == 0
    assert emulator.requests() == []


@pytest.mark.parametrize(
    ("sizes", "requests"),
    [
        # The second page holds both batches' products: the first batch counts it.
        pytest.param((150, 100), [2, 1], id="the second of three pages shared"),
        pytest.param((50, 30), [1, 0], id="one page for both"),
        pytest.param((100, 100), [1, 1], id="a page each"),
    ],
)
def test_each_request_is_counted_once_even_when_batches_share_a_page(
    batches, emulator, sizes, requests
):
    catalog = batches(*sizes)
    catalog.sync()
    before = len(emulator.requests())

    verified = catalog.verify()

    reads = emulator.requests()[before:]
    assert [v.result.mismatches for v in verified] == [(), ()]
    assert [v.requests for v in verified] == requests
    assert sum(requests) == len(reads)
    assert {(entry["method"], entry["path"]) for entry in reads} == {("GET", "/v1/products")}


def test_stripe_out_of_reach_leaves_the_batch_unverified_saying_why_and_repairs_nothing(
    batches, emulator
):
    catalog = batches(5)
    catalog.sync()
    checkpoints = catalog.state.checkpoints(BATCH)

    with contextlib.closing(stripe_api(f"http://127.0.0.1:{free_port()}")) as nowhere:
        [verified] = catalog.verify(api=nowhere)

    assert verified.result.stripe_unread
    assert {m.actual for m in verified.result.mismatches} == {"not verified"}
    assert verified.result.repairs == {}
    assert catalog.state.checkpoints(BATCH) == checkpoints


def test_a_key_stripe_refuses_stops_the_verification_with_key_refused(batches, emulator):
    catalog = batches(5)
    catalog.sync()
    emulator.configure(api_keys=[TEST_SECRET_KEY])
    revoked = stripe_api(emulator.base_url, "sk_test_revoked_by_the_account_owner")

    with (
        contextlib.closing(revoked),
        pytest.raises(KeyRefused, match=r"^Stripe refused the key \("),
    ):
        catalog.verify(api=revoked)
