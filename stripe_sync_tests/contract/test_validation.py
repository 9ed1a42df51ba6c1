"""Request validation: metadata limits, unknown and missing parameters."""

from __future__ import annotations

import pytest
import stripe

from ._helpers import assert_stripe_error

# make_product adds metadata[contract_run], so "n own keys" means n + 1 keys in total.


def test_metadata_with_50_keys_is_accepted(make_product):
    own = {f"k{i}": str(i) for i in range(49)}
    product = make_product(metadata=own)
    assert len(product.metadata.to_dict()) == 50


def test_metadata_with_51_keys_is_rejected(make_product):
    with pytest.raises(stripe.InvalidRequestError) as ei:
        make_product(metadata={f"k{i}": str(i) for i in range(50)})
    assert_stripe_error(ei.value, status=400, type="invalid_request_error")


def test_metadata_beyond_50_keys_is_rejected_on_update(client, make_product):
    product = make_product(metadata={f"k{i}": str(i) for i in range(49)})
    with pytest.raises(stripe.InvalidRequestError) as ei:
        client.v1.products.update(product.id, params={"metadata": {"one_more": "x"}})
    assert_stripe_error(ei.value, status=400, type="invalid_request_error")
    assert len(client.v1.products.retrieve(product.id).metadata.to_dict()) == 50


def test_a_metadata_key_of_40_characters_is_accepted(make_product):
    key = "k" * 40
    assert make_product(metadata={key: "v"}).metadata[key] == "v"


def test_a_metadata_key_of_41_characters_is_rejected(make_product):
    with pytest.raises(stripe.InvalidRequestError) as ei:
        make_product(metadata={"k" * 41: "v"})
    assert_stripe_error(ei.value, status=400, type="invalid_request_error")


def test_a_metadata_key_with_square_brackets_is_rejected(make_product):
    with pytest.raises(stripe.InvalidRequestError) as ei:
        make_product(metadata={"bad[key": "v"})
    assert_stripe_error(ei.value, status=400, type="invalid_request_error")


def test_a_metadata_value_of_500_characters_is_accepted(make_product):
    value = "v" * 500
    assert make_product(metadata={"long": value}).metadata["long"] == value


def test_a_metadata_value_of_501_characters_is_rejected(make_product):
    with pytest.raises(stripe.InvalidRequestError) as ei:
        make_product(metadata={"long": "v" * 501})
    assert_stripe_error(ei.value, status=400, type="invalid_request_error")


def test_metadata_values_come_back_as_strings(make_product):
    product = make_product(metadata={"n": 42, "flag": True})
    assert product.metadata["n"] == "42"
    assert product.metadata["flag"] == "true"  # stripe-python encodes True as "true"


def test_an_unknown_top_level_parameter_is_parameter_unknown(make_product):
    with pytest.raises(stripe.InvalidRequestError) as ei:
        make_product(foo="bar")
    assert_stripe_error(
        ei.value,
        status=400,
        type="invalid_request_error",
        code="parameter_unknown",
        param="foo",
        message="Received unknown parameter: foo",
    )


def test_an_unknown_nested_parameter_is_parameter_unknown_with_its_full_name(make_product):
    with pytest.raises(stripe.InvalidRequestError) as ei:
        make_product(default_price_data={"currency": "usd", "unit_amount": 100, "foo": "bar"})
    assert_stripe_error(
        ei.value,
        status=400,
        type="invalid_request_error",
        code="parameter_unknown",
        param="default_price_data[foo]",
        message="Received unknown parameter: default_price_data[foo]",
    )


def test_an_unknown_parameter_on_a_list_is_parameter_unknown(client):
    with pytest.raises(stripe.InvalidRequestError) as ei:
        client.v1.products.list(params={"foo": "bar"})
    assert_stripe_error(
        ei.value,
        status=400,
        type="invalid_request_error",
        code="parameter_unknown",
        param="foo",
    )


def test_a_missing_product_name_is_parameter_missing(client, unique_id, run_tag):
    with pytest.raises(stripe.InvalidRequestError) as ei:
        client.v1.products.create(
            params={"id": unique_id("prod"), "metadata": {"contract_run": run_tag}}
        )
    assert_stripe_error(
        ei.value,
        status=400,
        type="invalid_request_error",
        code="parameter_missing",
        param="name",
        message="Missing required param: name.",
    )


def test_a_price_without_currency_is_parameter_missing(client, make_product, run_tag):
    product = make_product()
    with pytest.raises(stripe.InvalidRequestError) as ei:
        client.v1.prices.create(
            params={
                "product": product.id,
                "unit_amount": 100,
                "metadata": {"contract_run": run_tag},
            }
        )
    assert_stripe_error(
        ei.value,
        status=400,
        type="invalid_request_error",
        code="parameter_missing",
        param="currency",
        message="Missing required param: currency.",
    )
