"""Recurring prices: `recurring[interval]` and `interval_count`, the price's `type`, the
three ways to create one (`POST /v1/prices`, `default_price_data`, `product_data`), and
listing by `type` and `recurring[...]`.

Every list is scoped to one product of this run (``product=``), so other prices in the
account never matter.
"""

from __future__ import annotations

import pytest
import stripe

from ._helpers import PRICE_FIELDS, assert_stripe_error, ids_of

# Stripe's `recurring` hash with its defaults, for API versions since 2025-03-31.basil
# (stripe-python 16 pins one): no `aggregate_usage` any more.
MONTHLY = {
    "interval": "month",
    "interval_count": 1,
    "meter": None,
    "trial_period_days": None,
    "usage_type": "licensed",
}

# "Maximum of three years interval allowed (3 years, 36 months, or 156 weeks)" (the SDK's
# docstring of `interval_count`). Days are not named: 1095 is three 365-day years, and
# 1097 is beyond three years however leap days are counted.
LONGEST = [("year", 3), ("month", 36), ("week", 156), ("day", 1095)]
TOO_LONG = [("year", 4), ("month", 37), ("week", 157), ("day", 1097)]


def test_a_recurring_price_has_the_documented_fields_and_recurring_defaults(
    client, make_price, product
):
    price = make_price(product.id, unit_amount=900, recurring={"interval": "month"})
    assert PRICE_FIELDS <= set(price.to_dict()), PRICE_FIELDS - set(price.to_dict())
    assert (price.type, price.billing_scheme, price.unit_amount) == ("recurring", "per_unit", 900)
    assert price.recurring.to_dict() == MONTHLY
    assert client.v1.prices.retrieve(price.id).to_dict() == price.to_dict()


@pytest.mark.parametrize(("interval", "count"), [("month", 3), *LONGEST])
def test_an_interval_count_up_to_three_years_is_kept(make_price, product, interval, count):
    price = make_price(product.id, recurring={"interval": interval, "interval_count": count})
    assert price.type == "recurring"
    assert (price.recurring.interval, price.recurring.interval_count) == (interval, count)


@pytest.mark.parametrize(("interval", "count"), TOO_LONG)
def test_an_interval_count_beyond_three_years_is_refused_naming_the_param(
    client, make_price, product, interval, count
):
    with pytest.raises(stripe.InvalidRequestError) as ei:
        make_price(product.id, recurring={"interval": interval, "interval_count": count})
    assert_stripe_error(
        ei.value, status=400, type="invalid_request_error", param="recurring[interval_count]"
    )
    listed = client.v1.prices.list(params={"product": product.id})
    assert ids_of(listed.data) == [product.default_price]


@pytest.mark.parametrize("count", [0, -1])
def test_an_interval_count_below_one_is_refused_naming_the_param(make_price, product, count):
    with pytest.raises(stripe.InvalidRequestError) as ei:
        make_price(product.id, recurring={"interval": "month", "interval_count": count})
    assert_stripe_error(
        ei.value, status=400, type="invalid_request_error", param="recurring[interval_count]"
    )


@pytest.mark.parametrize("interval", ["fortnight", "monthly", "Month"])
def test_an_unknown_interval_is_refused_naming_the_param(make_price, product, interval):
    with pytest.raises(stripe.InvalidRequestError) as ei:
        make_price(product.id, recurring={"interval": interval})
    assert_stripe_error(
        ei.value, status=400, type="invalid_request_error", param="recurring[interval]"
    )


def test_recurring_without_an_interval_is_parameter_missing(make_price, product):
    with pytest.raises(stripe.InvalidRequestError) as ei:
        make_price(product.id, recurring={"interval_count": 2})
    assert_stripe_error(ei.value, status=400, code="parameter_missing", param="recurring[interval]")


def test_an_unknown_usage_type_is_refused_naming_the_param(make_price, product):
    with pytest.raises(stripe.InvalidRequestError) as ei:
        make_price(product.id, recurring={"interval": "month", "usage_type": "per_seat"})
    assert_stripe_error(
        ei.value, status=400, type="invalid_request_error", param="recurring[usage_type]"
    )


def test_a_metered_price_without_a_meter_is_refused(make_price, product):
    # Legacy usage-based billing is gone since 2025-03-31.basil: metered needs a meter.
    with pytest.raises(stripe.InvalidRequestError) as ei:
        make_price(product.id, recurring={"interval": "month", "usage_type": "metered"})
    assert_stripe_error(ei.value, status=400, type="invalid_request_error")


@pytest.mark.parametrize("change", [{"recurring": {"interval": "year"}}, {"type": "one_time"}])
def test_a_prices_recurring_and_type_never_change(client, make_price, product, change):
    price = make_price(product.id, recurring={"interval": "month"})
    with pytest.raises(stripe.InvalidRequestError) as ei:
        client.v1.prices.update(price.id, params=change)
    assert_stripe_error(ei.value, status=400, code="parameter_unknown")
    now = client.v1.prices.retrieve(price.id)
    assert (now.type, now.recurring.to_dict()) == ("recurring", MONTHLY)


# --------------------------------------------------------------- default_price_data


def test_default_price_data_with_recurring_makes_a_recurring_default_price(client, make_product):
    product = make_product(
        default_price_data={
            "currency": "eur",
            "unit_amount": 9900,
            "recurring": {"interval": "year", "interval_count": 2},
        }
    )
    price = client.v1.prices.retrieve(product.default_price)
    assert (price.product, price.type, price.unit_amount) == (product.id, "recurring", 9900)
    assert price.recurring.to_dict() == {**MONTHLY, "interval": "year", "interval_count": 2}


def test_default_price_data_with_recurring_defaults_the_interval_count_to_1(client, make_product):
    product = make_product(
        default_price_data={
            "currency": "usd",
            "unit_amount": 500,
            "recurring": {"interval": "week"},
        }
    )
    price = client.v1.prices.retrieve(product.default_price)
    assert price.recurring.to_dict() == {**MONTHLY, "interval": "week"}


@pytest.mark.parametrize(
    ("recurring", "param"),
    [
        (
            {"interval": "month", "interval_count": 37},
            "default_price_data[recurring][interval_count]",
        ),
        ({"interval": "fortnight"}, "default_price_data[recurring][interval]"),
    ],
)
def test_default_price_data_with_a_bad_recurring_is_refused_and_makes_no_product(
    client, make_product, unique_id, recurring, param
):
    product_id = unique_id("prod")
    with pytest.raises(stripe.InvalidRequestError) as ei:
        make_product(
            id=product_id,
            default_price_data={"currency": "usd", "unit_amount": 500, "recurring": recurring},
        )
    assert_stripe_error(ei.value, status=400, type="invalid_request_error", param=param)
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.products.retrieve(product_id)
    assert_stripe_error(missing.value, status=404, code="resource_missing")


def test_default_price_data_recurring_takes_only_interval_and_interval_count(make_product):
    with pytest.raises(stripe.InvalidRequestError) as ei:
        make_product(
            default_price_data={
                "currency": "usd",
                "unit_amount": 500,
                "recurring": {"interval": "month", "usage_type": "licensed"},
            }
        )
    assert_stripe_error(
        ei.value,
        status=400,
        code="parameter_unknown",
        param="default_price_data[recurring][usage_type]",
    )


# ------------------------------------------------------------------- product_data


def test_a_price_with_product_data_and_recurring_makes_its_product_and_a_recurring_price(
    client, make_price, unique_id
):
    product_id = unique_id("prod")
    price = make_price(
        None,
        unit_amount=1500,
        product_data={"id": product_id, "name": "Inline plan"},
        recurring={"interval": "week", "interval_count": 2},
    )
    assert (price.product, price.type) == (product_id, "recurring")
    assert price.recurring.to_dict() == {**MONTHLY, "interval": "week", "interval_count": 2}
    product = client.v1.products.retrieve(product_id)
    assert (product.name, product.default_price) == ("Inline plan", None)


def test_a_price_with_product_data_and_a_bad_recurring_makes_no_product(
    client, make_price, unique_id
):
    product_id = unique_id("prod")
    with pytest.raises(stripe.InvalidRequestError) as ei:
        make_price(
            None,
            product_data={"id": product_id, "name": "Never made"},
            recurring={"interval": "year", "interval_count": 4},
        )
    assert_stripe_error(ei.value, status=400, param="recurring[interval_count]")
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.products.retrieve(product_id)
    assert_stripe_error(missing.value, status=404, code="resource_missing")


# ------------------------------------------------------------------------ listing


@pytest.fixture(scope="module")
def mixed_prices(make_product, make_price):
    """A product with one-time and recurring prices; returns (product id, {name: price id})."""
    product = make_product(default_price_data={"currency": "usd", "unit_amount": 100})
    made = {"one_time_usd": product.default_price}
    made["monthly"] = make_price(product.id, recurring={"interval": "month"}).id
    made["one_time_eur"] = make_price(product.id, currency="eur").id
    made["quarterly"] = make_price(
        product.id, recurring={"interval": "month", "interval_count": 3}
    ).id
    made["yearly"] = make_price(product.id, recurring={"interval": "year"}).id
    return product.id, made


@pytest.mark.parametrize(
    ("recurring", "expected"),
    [
        ({"interval": "month"}, ["quarterly", "monthly"]),
        ({"interval": "year"}, ["yearly"]),
        ({"interval": "day"}, []),
        ({"usage_type": "licensed"}, ["yearly", "quarterly", "monthly"]),
        ({"usage_type": "metered"}, []),
        ({"interval": "month", "usage_type": "licensed"}, ["quarterly", "monthly"]),
    ],
)
def test_listing_by_recurring_fields_returns_only_recurring_prices_that_match(
    client, mixed_prices, recurring, expected
):
    product_id, made = mixed_prices
    page = client.v1.prices.list(params={"product": product_id, "recurring": recurring})
    assert ids_of(page.data) == [made[name] for name in expected]


def test_listing_by_recurring_interval_combines_with_other_filters(client, mixed_prices):
    product_id, made = mixed_prices
    page = client.v1.prices.list(
        params={
            "product": product_id,
            "type": "recurring",
            "currency": "usd",
            "recurring": {"interval": "year"},
        }
    )
    assert ids_of(page.data) == [made["yearly"]]


@pytest.mark.parametrize(
    ("filters", "param"),
    [
        ({"type": "monthly"}, "type"),
        ({"recurring": {"interval": "fortnight"}}, "recurring[interval]"),
        ({"recurring": {"usage_type": "per_seat"}}, "recurring[usage_type]"),
    ],
)
def test_listing_by_an_unknown_type_or_recurring_value_is_refused_naming_the_param(
    client, mixed_prices, filters, param
):
    product_id, _ = mixed_prices
    with pytest.raises(stripe.InvalidRequestError) as ei:
        client.v1.prices.list(params={"product": product_id, **filters})
    assert_stripe_error(ei.value, status=400, type="invalid_request_error", param=param)
