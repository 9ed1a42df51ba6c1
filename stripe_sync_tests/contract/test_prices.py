"""Prices: lookup keys and transfer, update rules, immutability, archive rules, currencies."""

from __future__ import annotations

from decimal import Decimal

import pytest
import stripe

from ._helpers import PRICE_FIELDS, assert_stripe_error

LOOKUP_KEY_TAKEN_RE = r"A price \(`?price_[A-Za-z0-9_]+`?\) already uses that lookup key\."  # real Stripe may quote the id in backticks


def test_a_price_has_the_documented_fields(make_price, product):
    price = make_price(product.id, unit_amount=1999)
    assert PRICE_FIELDS <= set(price.to_dict()), PRICE_FIELDS - set(price.to_dict())
    assert price.object == "price"
    assert price.billing_scheme == "per_unit"
    assert price.type == "one_time"
    assert price.recurring is None
    assert price.livemode is False
    assert price.product == product.id
    assert price.unit_amount == 1999 and price.unit_amount_decimal == Decimal(
        1999
    )  # the SDK decodes it to Decimal


def test_a_price_with_product_data_makes_its_product_without_a_default_price(
    make_price, unique_id, client, run_tag
):
    product_id = unique_id("prod")
    price = make_price(
        None,
        unit_amount=1250,
        product_data={"id": product_id, "name": "Inline", "metadata": {"contract_run": run_tag}},
    )
    product = client.v1.products.retrieve(product_id)
    assert price.product == product_id
    assert (product.name, product.active, product.default_price) == ("Inline", True, None)
    assert product.metadata["contract_run"] == run_tag

    updated = client.v1.products.update(
        product_id, params={"description": "Set after", "default_price": price.id}
    )
    assert (updated.description, updated.default_price) == ("Set after", price.id)


def test_a_price_with_product_data_refuses_a_used_custom_id_and_makes_no_price(
    make_price, product, client
):
    with pytest.raises(stripe.InvalidRequestError) as ei:
        make_price(None, product_data={"id": product.id, "name": "Second"})
    assert_stripe_error(ei.value, status=400, code="resource_already_exists")
    assert [p.id for p in client.v1.prices.list(params={"product": product.id}).data] == [
        product.default_price
    ]


def test_product_data_carries_no_description(make_price, unique_id):
    with pytest.raises(stripe.InvalidRequestError) as ei:
        make_price(None, product_data={"id": unique_id("prod"), "name": "X", "description": "No"})
    assert_stripe_error(
        ei.value, status=400, code="parameter_unknown", param="product_data[description]"
    )


def test_a_price_with_recurring_is_of_type_recurring(make_price, product):
    price = make_price(product.id, unit_amount=500, recurring={"interval": "month"})
    assert price.type == "recurring"
    assert price.recurring.interval == "month"


@pytest.mark.parametrize(
    "recurring, expected_type",
    [(None, "one_time"), ({"interval": "month"}, "recurring")],
    ids=["one_time", "recurring"],
)
def test_a_products_price_list_includes_prices_without_metadata_each_with_its_type(
    client, created, product, recurring, expected_type
):
    # Created without the run tag on purpose (as prices made outside the pipeline are);
    # `created` still archives it after a real run.
    extra = {"recurring": recurring} if recurring else {}
    bare = client.v1.prices.create(
        params={"product": product.id, "currency": "usd", "unit_amount": 700, **extra}
    )
    created.price(bare.id)
    listed = client.v1.prices.list(params={"product": product.id}).data
    assert [p.id for p in listed] == [bare.id, product.default_price]
    by_id = {p.id: p.to_dict() for p in listed}
    # The default price came from default_price_data without metadata.
    assert by_id[product.default_price]["metadata"] == {}
    assert (by_id[product.default_price]["type"], by_id[product.default_price]["recurring"]) == (
        "one_time",
        None,
    )
    assert by_id[bare.id]["metadata"] == {}
    assert by_id[bare.id]["type"] == expected_type
    if recurring is None:
        assert "recurring" in by_id[bare.id] and by_id[bare.id]["recurring"] is None
    else:
        assert by_id[bare.id]["recurring"]["interval"] == "month"


def test_creating_a_price_with_a_lookup_key_stores_it(
    client, make_price, product, unique_lookup_key
):
    key = unique_lookup_key()
    price = make_price(product.id, lookup_key=key, nickname="Standard")
    assert price.lookup_key == key
    assert price.nickname == "Standard"
    listed = client.v1.prices.list(params={"lookup_keys": [key]})
    assert [p.id for p in listed.data] == [price.id]


def test_a_lookup_key_of_200_characters_is_accepted_and_201_is_rejected(
    make_price, product, unique_lookup_key
):
    base = unique_lookup_key() + "_"
    key200 = base + "x" * (200 - len(base))
    assert make_price(product.id, lookup_key=key200).lookup_key == key200
    key201 = base + "y" * (201 - len(base))
    with pytest.raises(stripe.InvalidRequestError) as ei:
        make_price(product.id, lookup_key=key201)
    assert_stripe_error(ei.value, status=400, type="invalid_request_error", param="lookup_key")


def test_reusing_a_lookup_key_without_transfer_fails(
    client, make_price, product, unique_lookup_key
):
    key = unique_lookup_key()
    first = make_price(product.id, lookup_key=key)
    with pytest.raises(stripe.InvalidRequestError) as ei:
        make_price(product.id, lookup_key=key, unit_amount=2000)
    assert_stripe_error(
        ei.value, status=400, type="invalid_request_error", message_re=LOOKUP_KEY_TAKEN_RE
    )
    assert first.id in ei.value.user_message
    assert client.v1.prices.retrieve(first.id).lookup_key == key


def test_transfer_lookup_key_moves_the_key_to_the_new_price(
    client, make_price, product, unique_lookup_key
):
    key = unique_lookup_key()
    old = make_price(product.id, lookup_key=key)
    new = make_price(product.id, lookup_key=key, transfer_lookup_key=True, unit_amount=2000)
    assert new.lookup_key == key
    assert client.v1.prices.retrieve(old.id).lookup_key is None
    listed = client.v1.prices.list(params={"lookup_keys": [key]})
    assert [p.id for p in listed.data] == [new.id]


def test_updating_a_price_accepts_active_metadata_nickname_and_lookup_key(
    client, make_price, product, unique_lookup_key, run_tag
):
    price = make_price(product.id, nickname="before", metadata={"a": "1"})
    key = unique_lookup_key()
    after = client.v1.prices.update(
        price.id,
        params={"active": False, "metadata": {"b": "2"}, "nickname": "after", "lookup_key": key},
    )
    assert after.id == price.id
    assert after.active is False
    assert after.nickname == "after"
    assert after.lookup_key == key
    assert after.metadata.to_dict() == {"contract_run": run_tag, "a": "1", "b": "2"}
    assert client.v1.prices.retrieve(price.id).to_dict() == after.to_dict()


@pytest.mark.parametrize("recurring", [None, {"interval": "month"}])
def test_a_nickname_is_kept_from_create_changed_and_cleared_with_an_empty_string(
    client, make_price, product, recurring
):
    extra = {"recurring": recurring} if recurring else {}
    price = make_price(product.id, nickname="Standard", **extra)
    assert client.v1.prices.retrieve(price.id).nickname == "Standard"
    untouched = client.v1.prices.update(price.id, params={"metadata": {"n": "1"}})
    assert untouched.nickname == "Standard"
    assert client.v1.prices.update(price.id, params={"nickname": "Plus"}).nickname == "Plus"
    cleared = client.v1.prices.update(price.id, params={"nickname": ""})
    assert cleared.nickname is None
    assert client.v1.prices.retrieve(price.id).nickname is None


def test_a_price_without_a_nickname_has_nickname_null(make_price, product):
    assert make_price(product.id).nickname is None


def test_default_price_data_carries_no_nickname(make_product):
    with pytest.raises(stripe.InvalidRequestError) as ei:
        make_product(
            default_price_data={"currency": "usd", "unit_amount": 500, "nickname": "Standard"}
        )
    assert_stripe_error(
        ei.value, status=400, code="parameter_unknown", param="default_price_data[nickname]"
    )


def test_updating_a_price_lookup_key_held_elsewhere_needs_transfer(
    client, make_price, product, unique_lookup_key
):
    key = unique_lookup_key()
    holder = make_price(product.id, lookup_key=key)
    other = make_price(product.id, unit_amount=3000)
    with pytest.raises(stripe.InvalidRequestError) as ei:
        client.v1.prices.update(other.id, params={"lookup_key": key})
    assert_stripe_error(
        ei.value, status=400, type="invalid_request_error", message_re=LOOKUP_KEY_TAKEN_RE
    )
    moved = client.v1.prices.update(
        other.id, params={"lookup_key": key, "transfer_lookup_key": True}
    )
    assert moved.lookup_key == key
    assert client.v1.prices.retrieve(holder.id).lookup_key is None


def test_unit_amount_on_price_update_is_parameter_unknown(client, make_price, product):
    price = make_price(product.id, unit_amount=1500)
    with pytest.raises(stripe.InvalidRequestError) as ei:
        client.v1.prices.update(price.id, params={"unit_amount": 1600})
    assert_stripe_error(
        ei.value,
        status=400,
        type="invalid_request_error",
        code="parameter_unknown",
        param="unit_amount",
        message="Received unknown parameter: unit_amount",
    )


def test_currency_on_price_update_is_parameter_unknown(client, make_price, product):
    price = make_price(product.id, currency="usd")
    with pytest.raises(stripe.InvalidRequestError) as ei:
        client.v1.prices.update(price.id, params={"currency": "eur"})
    assert_stripe_error(ei.value, status=400, code="parameter_unknown", param="currency")


def test_a_price_amount_and_currency_never_change(client, make_price, product):
    price = make_price(product.id, currency="gbp", unit_amount=777)
    client.v1.prices.update(price.id, params={"nickname": "renamed", "metadata": {"x": "y"}})
    client.v1.prices.update(price.id, params={"active": False})
    for bad in ({"unit_amount": 1}, {"currency": "usd"}, {"unit_amount_decimal": "1"}):
        with pytest.raises(stripe.InvalidRequestError):
            client.v1.prices.update(price.id, params=bad)
    now = client.v1.prices.retrieve(price.id)
    assert (now.currency, now.unit_amount, now.unit_amount_decimal) == ("gbp", 777, Decimal(777))
    assert now.created == price.created


def test_archiving_a_products_default_price_is_refused(client, product):
    with pytest.raises(stripe.InvalidRequestError) as ei:
        client.v1.prices.update(product.default_price, params={"active": False})
    assert_stripe_error(
        ei.value,
        status=400,
        type="invalid_request_error",
        message="This price cannot be archived because it is the default price of its product.",
    )
    assert client.v1.prices.retrieve(product.default_price).active is True


def test_changing_a_price_is_create_new_set_default_then_archive_old(client, make_price, product):
    old_id = product.default_price
    new = make_price(product.id, currency="usd", unit_amount=1100)
    updated = client.v1.products.update(product.id, params={"default_price": new.id})
    assert updated.default_price == new.id
    archived = client.v1.prices.update(old_id, params={"active": False})
    assert archived.active is False
    assert client.v1.prices.retrieve(old_id).unit_amount == 1000
    assert client.v1.products.retrieve(product.id).default_price == new.id


def test_an_unsupported_currency_is_rejected(make_price, product):
    with pytest.raises(stripe.InvalidRequestError) as ei:
        make_price(product.id, currency="xyz")
    assert_stripe_error(ei.value, status=400, type="invalid_request_error", param="currency")


def test_a_negative_unit_amount_is_rejected(make_price, product):
    with pytest.raises(stripe.InvalidRequestError) as ei:
        make_price(product.id, unit_amount=-1)
    assert_stripe_error(ei.value, status=400, type="invalid_request_error", param="unit_amount")


def test_a_zero_unit_amount_is_a_free_price(make_price, product):
    price = make_price(product.id, unit_amount=0)
    assert price.unit_amount == 0
    assert price.active is True


def test_a_zero_decimal_currency_amount_is_in_major_units(client, make_price, product):
    price = make_price(product.id, currency="jpy", unit_amount=500)
    assert price.currency == "jpy"
    assert price.unit_amount == 500
    assert client.v1.prices.retrieve(price.id).unit_amount == 500


def test_a_three_decimal_currency_amount_is_in_minor_units(make_price, product):
    price = make_price(product.id, currency="kwd", unit_amount=1250)
    assert (price.currency, price.unit_amount) == ("kwd", 1250)
