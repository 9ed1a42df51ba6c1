import pytest

from stripe_sync.emulator.errors import StripeApiError
from stripe_sync.emulator.search import SearchIndex, parse_query

HAT = {"id": "p1", "created": 1, "name": "Red Hat", "active": True, "metadata": {"cms_id": "42"}}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("metadata['cms_id']:'42'", True),
        ('metadata["cms_id"]:"43"', False),
        ("active:'true'", True),
        ("name:'red hat'", True),
        ("name~'red'", True),
        ("-name~'red'", False),
        ("active:'true' AND metadata['cms_id']:'42'", True),
        ("active:'false' OR metadata['cms_id']:'42'", True),
        ("active:'false' AND metadata['cms_id']:'42'", False),
        ("created>0", True),
        ("created<1", False),
        ("metadata['missing']:null", True),
    ],
)
def test_queries_match_as_stripes_search_language_says(query, expected):
    assert parse_query(query, "product")(HAT) is expected


@pytest.mark.parametrize(
    "query",
    [
        "active:'true' AND name:'x' OR name:'y'",  # AND and OR are mutually exclusive
        "sku:'x'",  # not a product search field
        "name~'ab'",  # substring needs 3 characters
        "metadata:'x'",
        "active:'true' AND",
        "",
    ],
)
def test_invalid_queries_are_invalid_requests_on_param_query(query):
    with pytest.raises(StripeApiError) as error:
        parse_query(query, "product")
    assert (error.value.status, error.value.param) == (400, "query")


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_the_index_shows_a_write_only_after_the_indexing_delay():
    clock = FakeClock()
    index = SearchIndex(clock)
    index.record("product", "p1", {"id": "p1", "created": 1, "name": "old"})
    assert index.visible("product", delay_s=5) == []
    clock.now += 5
    assert [p["name"] for p in index.visible("product", delay_s=5)] == ["old"]


def test_an_update_shows_the_previous_version_until_indexed():
    clock = FakeClock()
    index = SearchIndex(clock)
    index.record("product", "p1", {"id": "p1", "created": 1, "name": "old"})
    clock.now += 10
    index.record("product", "p1", {"id": "p1", "created": 1, "name": "new"})
    assert [p["name"] for p in index.visible("product", delay_s=5)] == ["old"]
    clock.now += 5
    assert [p["name"] for p in index.visible("product", delay_s=5)] == ["new"]


def test_a_deletion_disappears_from_search_after_the_delay():
    clock = FakeClock()
    index = SearchIndex(clock)
    index.record("product", "p1", {"id": "p1", "created": 1, "name": "x"}, at=0)
    index.record("product", "p1", None)
    assert len(index.visible("product", delay_s=5)) == 1
    clock.now += 5
    assert index.visible("product", delay_s=5) == []
