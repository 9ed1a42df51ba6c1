import random
import uuid
from urllib.parse import unquote

import pytest

from stripe_sync.core.batches import batch_key, position_of, registration


def ids(n, start=0):
    return [f"p{i:04d}" for i in range(start, start + n)]


class Batches:
    """Registration run again and again over a catalog, the assignments kept as the state
    keeps them."""

    def __init__(self, batch_size):
        self.batch_size = batch_size
        self.registered: list[str] = []
        self.memberships: dict[str, str] = {}

    def register(self, catalog_ids):
        planned = registration(
            sorted(catalog_ids), self.memberships, self.registered, self.batch_size
        )
        self.memberships |= planned.assigned
        self.registered += planned.keys
        return planned

    def sizes(self):
        return [list(self.memberships.values()).count(key) for key in self.registered]


def test_a_new_catalog_is_cut_into_batches_of_batch_size_in_id_order():
    batches = Batches(batch_size=10)
    planned = batches.register(ids(25))
    assert planned.keys == ["00000~p0000", "00001~p0010", "00002~p0020"]
    assert planned.members("00001~p0010") == ids(10, start=10)
    assert batches.sizes() == [10, 10, 5]


def test_new_rows_fill_the_last_batch_first_then_new_batches():
    batches = Batches(batch_size=10)
    batches.register(ids(25))
    assert batches.register(ids(29)).keys == []  # the last batch now holds 9
    added = batches.register(ids(32))
    assert added.keys == ["00003~p0030"]
    assert batches.sizes() == [10, 10, 10, 2]
    assert (added.batch_of("p0031"), added.batch_of("p0003")) == ("00003~p0030", "00000~p0000")
    assert added.batch_of("p9999") is None


@pytest.mark.parametrize("id_kind", ["uuid", "text", "integer"])
def test_no_row_ever_changes_batch_as_the_catalog_grows_and_shrinks(id_kind):
    rng = random.Random(7)
    make = {
        "uuid": lambda: str(uuid.UUID(int=rng.getrandbits(128))),
        "text": lambda: f"sku-{rng.randrange(10**6)}",
        "integer": lambda: str(rng.randrange(10**6)),
    }[id_kind]
    batches = Batches(batch_size=100)
    catalog = {make() for _ in range(300)}
    batches.register(catalog)
    for _ in range(5):
        before = dict(batches.memberships)
        catalog |= {make() for _ in range(150)}  # new ids land among the old ones
        catalog -= set(rng.sample(sorted(catalog), 10))
        batches.register(catalog)
        assert {i: batches.memberships[i] for i in before} == before
        assert set(batches.memberships) >= catalog
        assert max(batches.sizes()) <= 100


def test_a_new_dagster_instance_first_registers_the_batches_the_state_knows():
    batches = Batches(batch_size=10)
    batches.register(ids(25))
    fresh = registration(ids(40), batches.memberships, [], batch_size=10)
    assert fresh.keys == [*batches.registered, "00003~p0030"]
    assert set(fresh.assigned) == set(ids(15, start=25))
    assert fresh.members("00002~p0020") == ids(5, start=25)


def test_registering_again_without_new_rows_changes_nothing():
    batches = Batches(batch_size=10)
    batches.register(ids(25))
    again = batches.register(ids(25))
    assert (again.keys, again.assigned) == ([], {})


@pytest.mark.parametrize("cms_id", ["a b", "x/y", "ümlaut", "tab\there", "50%", "a~b"])
def test_any_id_survives_the_round_trip_through_a_partition_key(cms_id):
    key = batch_key(7, cms_id)
    assert unquote(key.split("~", 1)[1]) == cms_id
    assert position_of(key) == 7
    assert "\t" not in key and " " not in key
