"""Lists: order, limit, cursors, filters, expand, auto-pagination.

Every list is scoped to this run's own objects (``ids[]`` for products, ``product``
or ``lookup_keys[]`` for prices) so other objects in the account never matter, except
the walk over all products: it checks only this test's own products among what it
sees, and against real Stripe it is bounded with ``created[gte]`` (never the whole
account).
"""

from __future__ import annotations

import pytest
import stripe

from ._helpers import assert_stripe_error, ids_of

N_PRICES = 12  # more than the default page size of 10


@pytest.fixture(scope="module")
def priced_product(make_product, make_price):
    """A product with 12 prices; returns (product id, price ids newest first)."""
    product = make_product(default_price_data={"currency": "usd", "unit_amount": 100})
    inserted = [product.default_price]
    inserted += [make_price(product.id, unit_amount=100 + i).id for i in range(1, N_PRICES)]
    return product.id, list(reversed(inserted))


def test_a_price_list_is_newest_first_with_ties_in_insertion_order(client, priced_product):
    product_id, newest_first = priced_product
    page = client.v1.prices.list(params={"product": product_id, "limit": 100})
    assert page.object == "list"
    assert page.url == "/v1/prices"
    assert page.has_more is False
    assert ids_of(page.data) == newest_first
    created = [p.created for p in page.data]
    assert created == sorted(created, reverse=True)


def test_a_product_list_is_a_list_object_newest_first(client, make_product):
    made = [make_product(name=f"Order {i}").id for i in range(3)]
    page = client.v1.products.list(params={"ids": made, "limit": 100})
    assert page.object == "list"
    assert page.url == "/v1/products"
    assert page.has_more is False
    assert ids_of(page.data) == list(reversed(made))


def test_a_list_returns_10_items_by_default(client, priced_product):
    product_id, newest_first = priced_product
    page = client.v1.prices.list(params={"product": product_id})
    assert ids_of(page.data) == newest_first[:10]
    assert page.has_more is True


def test_list_limit_accepts_1_to_100(client, priced_product):
    product_id, newest_first = priced_product
    one = client.v1.prices.list(params={"product": product_id, "limit": 1})
    assert ids_of(one.data) == newest_first[:1] and one.has_more is True
    hundred = client.v1.prices.list(params={"product": product_id, "limit": 100})
    assert ids_of(hundred.data) == newest_first and hundred.has_more is False


@pytest.mark.parametrize("limit", [0, 101])
def test_list_limit_outside_1_to_100_is_rejected(client, priced_product, limit):
    product_id, _ = priced_product
    with pytest.raises(stripe.InvalidRequestError) as ei:
        client.v1.prices.list(params={"product": product_id, "limit": limit})
    assert_stripe_error(ei.value, status=400, type="invalid_request_error", param="limit")


def test_starting_after_walks_all_pages_without_gaps_or_repeats(client, priced_product):
    product_id, newest_first = priced_product
    seen, pages, cursor = [], [], None
    while True:
        params = {"product": product_id, "limit": 5}
        if cursor:
            params["starting_after"] = cursor
        page = client.v1.prices.list(params=params)
        pages.append(len(page.data))
        seen += ids_of(page.data)
        if not page.has_more:
            break
        cursor = page.data[-1].id
        assert len(pages) < 10, "pagination does not terminate"
    assert pages == [5, 5, 2]
    assert seen == newest_first


def test_ending_before_walks_back_to_the_newest_without_gaps_or_repeats(client, priced_product):
    product_id, newest_first = priced_product
    oldest = newest_first[-1]
    collected: list[str] = []
    cursor = oldest
    while True:
        page = client.v1.prices.list(
            params={"product": product_id, "limit": 5, "ending_before": cursor}
        )
        ids = ids_of(page.data)
        # a page keeps newest-first order and holds the objects just newer than the cursor
        assert (
            ids == newest_first[newest_first.index(cursor) - len(ids) : newest_first.index(cursor)]
        )
        collected = ids + collected
        if not page.has_more:
            break
        cursor = ids[0]
        assert len(collected) < 20, "pagination does not terminate"
    assert collected == newest_first[:-1]


def test_auto_paging_iter_yields_every_item_once(client, priced_product):
    product_id, newest_first = priced_product
    page = client.v1.prices.list(params={"product": product_id, "limit": 3})
    assert ids_of(page.auto_paging_iter()) == newest_first


def test_the_ids_filter_returns_exactly_those_products(client, make_product):
    a, _, c = (make_product(name=f"Ids {i}").id for i in range(3))
    page = client.v1.products.list(params={"ids": [a, c]})
    assert ids_of(page.data) == [c, a]
    assert page.has_more is False


def test_the_ids_filter_cannot_be_combined_with_starting_after(client, make_product):
    a, b = make_product(name="Ids+cursor a").id, make_product(name="Ids+cursor b").id
    with pytest.raises(stripe.InvalidRequestError) as ei:
        client.v1.products.list(params={"ids": [a, b], "starting_after": b})
    assert_stripe_error(ei.value, status=400, type="invalid_request_error")


def test_the_active_filter_on_products(client, make_product):
    live = make_product(name="Active").id
    archived = make_product(name="Archived", active=False).id
    both = [live, archived]
    assert ids_of(client.v1.products.list(params={"ids": both, "active": True}).data) == [live]
    assert ids_of(client.v1.products.list(params={"ids": both, "active": False}).data) == [archived]
    assert set(ids_of(client.v1.products.list(params={"ids": both}).data)) == set(both)


def test_archived_prices_are_listed_unless_active_true(client, make_product, make_price):
    product = make_product(default_price_data={"currency": "usd", "unit_amount": 100})
    archived = make_price(product.id, unit_amount=200)
    client.v1.prices.update(archived.id, params={"active": False})
    everything = ids_of(client.v1.prices.list(params={"product": product.id}).data)
    assert everything == [archived.id, product.default_price]
    active = ids_of(client.v1.prices.list(params={"product": product.id, "active": True}).data)
    assert active == [product.default_price]
    inactive = ids_of(client.v1.prices.list(params={"product": product.id, "active": False}).data)
    assert inactive == [archived.id]


def test_the_lookup_keys_filter_returns_the_prices_holding_those_keys(
    client, make_product, make_price, unique_lookup_key
):
    product = make_product()
    k1, k2, k3 = unique_lookup_key(), unique_lookup_key(), unique_lookup_key()
    p1 = make_price(product.id, lookup_key=k1)
    p2 = make_price(product.id, lookup_key=k2)
    make_price(product.id, lookup_key=k3)
    page = client.v1.prices.list(params={"lookup_keys": [k1, k2, unique_lookup_key()]})
    assert ids_of(page.data) == [p2.id, p1.id]


def test_the_lookup_keys_filter_takes_at_most_10_keys(client, unique_lookup_key):
    keys = [unique_lookup_key() for _ in range(10)]
    assert client.v1.prices.list(params={"lookup_keys": keys}).data == []
    with pytest.raises(stripe.InvalidRequestError) as ei:
        client.v1.prices.list(params={"lookup_keys": keys + [unique_lookup_key()]})
    assert_stripe_error(ei.value, status=400, type="invalid_request_error")


def test_the_currency_and_type_filters_on_prices(client, make_product, make_price):
    product = make_product()
    usd = make_price(product.id, currency="usd", unit_amount=100)
    eur = make_price(product.id, currency="eur", unit_amount=100)
    monthly = make_price(
        product.id, currency="usd", unit_amount=900, recurring={"interval": "month"}
    )
    by_currency = client.v1.prices.list(params={"product": product.id, "currency": "eur"})
    assert ids_of(by_currency.data) == [eur.id]
    recurring = client.v1.prices.list(params={"product": product.id, "type": "recurring"})
    assert ids_of(recurring.data) == [monthly.id]
    one_time = client.v1.prices.list(params={"product": product.id, "type": "one_time"})
    assert ids_of(one_time.data) == [eur.id, usd.id]


@pytest.mark.parametrize("kind", ["products", "prices"])
def test_the_created_filter_narrows_a_list(client, make_product, make_price, kind):
    if kind == "products":
        obj = make_product()
        listing, scope = client.v1.products, {"ids": [obj.id]}
    else:
        obj = make_price(make_product().id)
        listing, scope = client.v1.prices, {"product": obj.product}
    before = listing.list(params={**scope, "created": {"lt": obj.created}})
    assert before.data == []
    since = listing.list(params={**scope, "created": {"gte": obj.created}})
    assert ids_of(since.data) == [obj.id]
    exactly = listing.list(params={**scope, "created": obj.created})
    assert ids_of(exactly.data) == [obj.id]


@pytest.mark.parametrize("limit", [3, 100])
def test_walking_all_products_lists_each_once_newest_first_archived_included_with_default_price_expanded(
    client, make_product, is_emulator, limit
):
    priced = {"default_price_data": {"currency": "usd", "unit_amount": 111}}
    made = [
        make_product(name="Walk priced", **priced),
        make_product(name="Walk archived at create", active=False),
        make_product(name="Walk without price"),
        make_product(name="Walk archived later", **priced),
    ]
    client.v1.products.update(made[3].id, params={"active": False})
    archived = {made[1].id, made[3].id}
    mine = {p.id: p for p in made}

    params: dict = {"limit": limit, "expand": ["data.default_price"]}
    if not is_emulator:
        # A real account may hold any number of products: walk only what is at least
        # as new as this test's first product (others' products in that window are fine).
        params["created"] = {"gte": made[0].created}
    walked: list[stripe.Product] = []
    seen: set[str] = set()
    cursor = None
    while True:
        page = client.v1.products.list(
            params={**params, **({"starting_after": cursor} if cursor else {})}
        )
        assert page.object == "list" and page.url == "/v1/products"
        page_ids = ids_of(page.data)
        assert not seen & set(page_ids), "a product was listed twice"
        seen.update(page_ids)
        walked += page.data
        if not page.has_more:
            assert len(page.data) <= limit
            break
        assert len(page.data) == limit
        cursor = page.data[-1].id

    created = [p.created for p in walked]
    assert created == sorted(created, reverse=True)
    assert [p.id for p in walked if p.id in mine] == [p.id for p in reversed(made)]
    for listed in walked:
        assert listed.default_price is None or isinstance(listed.default_price, stripe.Price)
        if listed.id not in mine:
            continue
        assert listed.active is (listed.id not in archived)
        default_price = mine[listed.id].default_price
        if default_price is None:
            assert listed.default_price is None
        else:
            assert isinstance(listed.default_price, stripe.Price)
            assert (listed.default_price.id, listed.default_price.object) == (
                default_price,
                "price",
            )
            assert listed.default_price.unit_amount == 111
            assert listed.default_price.product == listed.id


def test_expand_data_default_price_on_a_product_list(client, make_product):
    product = make_product(default_price_data={"currency": "usd", "unit_amount": 321})
    plain = client.v1.products.list(params={"ids": [product.id]})
    assert plain.data[0].default_price == product.default_price
    page = client.v1.products.list(params={"ids": [product.id], "expand": ["data.default_price"]})
    expanded = page.data[0].default_price
    assert isinstance(expanded, stripe.Price)
    assert expanded.id == product.default_price
    assert expanded.object == "price"
    assert expanded.unit_amount == 321


def test_expand_default_price_on_product_retrieve(client, make_product):
    product = make_product(default_price_data={"currency": "usd", "unit_amount": 654})
    fetched = client.v1.products.retrieve(product.id, params={"expand": ["default_price"]})
    assert isinstance(fetched.default_price, stripe.Price)
    assert fetched.default_price.id == product.default_price
    assert fetched.default_price.unit_amount == 654
    assert fetched.default_price.product == product.id
