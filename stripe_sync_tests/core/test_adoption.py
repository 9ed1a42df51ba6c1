"""What a plan reads of Stripe to adopt products: only where some valid row has no
checkpoint, the account listed once."""

import pandas as pd

from stripe_sync.core.adoption import AdoptionReads
from stripe_sync.core.planner import PlanOptions

KEYED = PlanOptions(adopt_metadata_key="code")


class CountingApi:
    """The one read `AdoptionReads.by_metadata` makes, counted."""

    def __init__(self):
        self.listings = 0

    def every_product(self):
        self.listings += 1
        return iter([{"id": "prod_a", "metadata": {"code": "1"}}])


def validated(*rows: tuple[str, tuple[str, ...]]) -> pd.DataFrame:
    return pd.DataFrame(
        {"cms_id": [cms_id for cms_id, _ in rows], "reasons": [r for _, r in rows]}, dtype=object
    )


def test_an_invalid_row_without_a_checkpoint_lists_nothing():
    api = CountingApi()
    reads = AdoptionReads(lambda: api)
    assert reads.by_metadata(validated(("9", ("name_missing: no name",))), {}, KEYED) == {}
    assert api.listings == 0


def test_the_account_is_listed_once_for_every_batch_that_needs_it():
    api = CountingApi()
    reads = AdoptionReads(lambda: api)
    for _batch in range(3):
        assert reads.by_metadata(validated(("1", ())), {}, KEYED) == {"1": ["prod_a"]}
    assert api.listings == 1
