import math
import random

import pytest

from stripe_sync.core.batches import batch_key, batches, first_id_of, locate, new_batch_keys


class Ids:
    """An id source ordered like a database would order these ids (`order`: sort key)."""

    def __init__(self, ids, order=str):
        self.order = order
        self.ids = sorted(ids, key=order)
        self.counts = 0

    def iter_ids(self, start=None, page_size=10_000):
        return iter([i for i in self.ids if start is None or self.order(i) >= self.order(start)])

    def count_ids(self, start=None):
        self.counts += 1
        return sum(1 for _ in self.iter_ids(start))


def ids(n, start=0):
    return [f"p{i:04d}" for i in range(start, start + n)]


def test_a_new_catalog_is_cut_into_batches_of_batch_size():
    keys = new_batch_keys(Ids(ids(25)), [], batch_size=10)
    assert [first_id_of(k) for k in keys] == ["p0000", "p0010", "p0020"]


def test_registration_only_appends_and_new_ids_fill_the_last_batch_first():
    catalog = Ids(ids(25))
    keys = new_batch_keys(catalog, [], batch_size=10)
    catalog.ids += ids(4, start=25)  # the last batch now holds 9
    assert new_batch_keys(catalog, keys, batch_size=10) == []
    catalog.ids += ids(3, start=29)  # 12 beyond the last start
    added = new_batch_keys(catalog, keys, batch_size=10)
    assert [first_id_of(k) for k in added] == ["p0030"]
    assert added[0].startswith("00003")


def test_a_new_id_inside_an_old_range_joins_that_batch_without_reshuffling():
    keys = new_batch_keys(Ids(ids(20)), [], batch_size=10)
    ranges = batches(keys)
    assert (ranges[0].lower, ranges[0].upper) == (None, "p0010")
    assert (ranges[1].lower, ranges[1].upper) == ("p0010", None)
    assert new_batch_keys(Ids([*ids(20), "p0005a"]), keys, batch_size=10) == []


@pytest.mark.parametrize("cms_id", ["a b", "x/y", "ümlaut", "tab\there", "50%", "a~b"])
def test_any_id_survives_the_round_trip_through_a_partition_key(cms_id):
    key = batch_key(7, cms_id)
    assert first_id_of(key) == cms_id
    assert key.startswith("00007~")
    assert "\t" not in key and " " not in key


def holder(keys, cms_id, order=str):
    """The batch whose range holds `cms_id`, by comparing ids directly."""
    return next(
        b.key
        for b in batches(keys)
        if (b.lower is None or order(cms_id) >= order(b.lower))
        and (b.upper is None or order(cms_id) < order(b.upper))
    )


@pytest.mark.parametrize("seed", range(20))
def test_locate_finds_the_batch_whose_range_holds_each_id(seed):
    rng = random.Random(seed)
    catalog = Ids(rng.sample(ids(400), rng.randint(1, 120)))
    keys = new_batch_keys(catalog, [], batch_size=rng.randint(1, 15))
    catalog.ids = sorted({*catalog.ids, *rng.sample(ids(400), 30)})  # new ids in old ranges
    assert locate(catalog, keys, catalog.ids) == {i: holder(keys, i) for i in catalog.ids}


def test_locate_follows_the_databases_order_not_the_texts():
    catalog = Ids([str(n) for n in range(1, 31)], order=int)  # 2 before 10, as integer ids
    keys = new_batch_keys(catalog, [], batch_size=10)
    assert [first_id_of(k) for k in keys] == ["1", "11", "21"]
    located = locate(catalog, keys, ["2", "9", "10", "11", "19", "20", "21", "30"])
    assert located == {
        "2": keys[0], "9": keys[0], "10": keys[0], "11": keys[1],
        "19": keys[1], "20": keys[1], "21": keys[2], "30": keys[2],
    }  # fmt: skip


def test_ids_before_the_first_batch_and_beyond_the_last_join_the_first_and_last():
    catalog = Ids(ids(30, start=10))
    keys = new_batch_keys(catalog, [], batch_size=10)
    catalog.ids = sorted([*catalog.ids, "p0001", "p0050"])
    assert locate(catalog, keys, ["p0001", "p0050"]) == {"p0001": keys[0], "p0050": keys[-1]}


def test_locating_an_id_costs_a_count_per_halving_of_the_batches():
    catalog = Ids(ids(5_000))
    keys = new_batch_keys(catalog, [], batch_size=5)
    assert len(keys) == 1_000
    catalog.counts = 0
    assert locate(catalog, keys, ["p2222"]) == {"p2222": keys[444]}
    assert catalog.counts <= 1 + math.ceil(math.log2(len(keys)))
