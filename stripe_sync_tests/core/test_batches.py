import pytest

from stripe_sync.core.batches import batch_key, batches, first_id_of, new_batch_keys


class Ids:
    """An id source ordered like a database would order these ids."""

    def __init__(self, ids):
        self.ids = sorted(ids)

    def iter_ids(self, start=None, page_size=10_000):
        return iter([i for i in self.ids if start is None or i >= start])


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
