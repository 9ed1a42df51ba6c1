"""Products: custom ids, default_price_data, update, delete rule, images, object shape."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
import stripe

from ._helpers import assert_stripe_error

PRODUCT_FIELDS = {
    "id",
    "object",
    "active",
    "created",
    "updated",
    "default_price",
    "description",
    "images",
    "livemode",
    "marketing_features",
    "metadata",
    "name",
    "package_dimensions",
    "shippable",
    "statement_descriptor",
    "tax_code",
    "unit_label",
    "url",
}


def test_creating_a_product_with_a_custom_id_uses_that_id(client, make_product, unique_id, run_tag):
    pid = unique_id("prod")
    product = make_product(
        id=pid, name="Custom id", description="desc", url="https://example.com/p"
    )
    assert product.id == pid
    assert product.object == "product"
    assert product.name == "Custom id"
    assert product.description == "desc"
    assert product.active is True
    assert product.metadata.to_dict() == {"contract_run": run_tag}
    assert client.v1.products.retrieve(pid).to_dict() == product.to_dict()


def test_creating_a_product_with_a_used_custom_id_fails_with_resource_already_exists(
    client, make_product, run_tag
):
    product = make_product(name="First")
    with pytest.raises(stripe.InvalidRequestError) as ei:
        client.v1.products.create(
            params={"id": product.id, "name": "Second", "metadata": {"contract_run": run_tag}}
        )
    assert_stripe_error(
        ei.value,
        status=400,
        type="invalid_request_error",
        code="resource_already_exists",
        param="id",
    )
    assert client.v1.products.retrieve(product.id).name == "First"


def test_a_product_has_the_documented_fields(make_product):
    product = make_product(name="Shape")
    assert PRODUCT_FIELDS <= set(product.to_dict()), PRODUCT_FIELDS - set(product.to_dict())
    assert product.livemode is False
    assert isinstance(product.created, int) and isinstance(product.updated, int)
    assert product.images == [] and product.default_price is None


def test_default_price_data_creates_the_first_price_and_sets_default_price(client, make_product):
    product = make_product(
        name="With price",
        default_price_data={"currency": "eur", "unit_amount": 1250, "metadata": {"cms": "42"}},
    )
    assert isinstance(product.default_price, str) and product.default_price.startswith("price_")
    price = client.v1.prices.retrieve(product.default_price)
    assert price.product == product.id
    assert price.currency == "eur"
    assert price.unit_amount == 1250
    assert price.unit_amount_decimal == Decimal(1250)  # the SDK decodes it to Decimal
    assert price.metadata.to_dict() == {"cms": "42"}
    assert price.active is True
    assert price.type == "one_time"
    assert price.lookup_key is None
    prices = client.v1.prices.list(params={"product": product.id})
    assert [p.id for p in prices.data] == [price.id]


def test_default_price_data_rejects_lookup_key_as_parameter_unknown(
    client, make_product, unique_id, unique_lookup_key
):
    pid = unique_id("prod")
    with pytest.raises(stripe.InvalidRequestError) as ei:
        make_product(
            id=pid,
            default_price_data={
                "currency": "usd",
                "unit_amount": 100,
                "lookup_key": unique_lookup_key(),
            },
        )
    assert_stripe_error(
        ei.value,
        status=400,
        type="invalid_request_error",
        code="parameter_unknown",
        param="default_price_data[lookup_key]",
    )
    # Nothing was created by the rejected request.
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.products.retrieve(pid)
    assert missing.value.http_status == 404


def test_updating_a_product_sets_fields_and_keeps_id_and_created(client, make_product):
    before = make_product(name="Old name", description="old description", metadata={"a": "1"})
    # `updated` has one-second resolution: wait into the next second so a change shows.
    time.sleep(max(0.0, before.updated + 1 - time.time()) + 0.05)
    after = client.v1.products.update(
        before.id,
        params={
            "name": "New name",
            "metadata": {"b": "2"},
            "images": ["https://example.com/a.png"],
        },
    )
    assert after.id == before.id
    assert after.created == before.created
    assert after.updated > before.updated
    assert after.name == "New name"
    assert after.description == "old description"
    assert after.images == ["https://example.com/a.png"]
    assert after.metadata["a"] == "1" and after.metadata["b"] == "2"
    assert client.v1.products.retrieve(before.id).to_dict() == after.to_dict()


def test_updating_a_product_description_to_empty_string_clears_it(client, make_product):
    product = make_product(description="to be cleared")
    after = client.v1.products.update(product.id, params={"description": ""})
    assert after.description is None
    assert client.v1.products.retrieve(product.id).description is None


@pytest.mark.parametrize(
    "sent",
    [{"change": "new"}, {"add": "new"}, {"change": "new", "add": "new"}],
    ids=["overwrite", "add", "overwrite_and_add"],
)
def test_updating_product_metadata_keeps_keys_not_sent_and_sets_or_overwrites_those_sent(
    client, make_product, run_tag, sent
):
    product = make_product(metadata={"keep": "old", "change": "old"})
    after = client.v1.products.update(product.id, params={"metadata": sent})
    expected = {"contract_run": run_tag, "keep": "old", "change": "old", **sent}
    assert after.metadata.to_dict() == expected
    assert client.v1.products.retrieve(product.id).metadata.to_dict() == expected


def test_setting_a_metadata_key_to_empty_string_removes_it(client, make_product, run_tag):
    product = make_product(metadata={"keep": "yes", "drop": "me"})
    after = client.v1.products.update(product.id, params={"metadata": {"drop": ""}})
    assert after.metadata.to_dict() == {"contract_run": run_tag, "keep": "yes"}


def test_archiving_a_product_sets_active_false(client, make_product):
    product = make_product(default_price_data={"currency": "usd", "unit_amount": 500})
    after = client.v1.products.update(product.id, params={"active": False})
    assert after.active is False
    assert after.default_price == product.default_price
    # The default price itself stays as it was.
    assert client.v1.prices.retrieve(product.default_price).active is True


def test_deleting_a_product_with_prices_is_refused(client, make_product):
    product = make_product(default_price_data={"currency": "usd", "unit_amount": 900})
    with pytest.raises(stripe.InvalidRequestError) as ei:
        client.v1.products.delete(product.id)
    assert_stripe_error(
        ei.value,
        status=400,
        type="invalid_request_error",
        message="This product cannot be deleted because it has one or more user-created prices.",
    )
    assert client.v1.products.retrieve(product.id).id == product.id


def test_deleting_a_product_without_prices_works_and_then_it_is_missing(client, make_product):
    product = make_product(name="Doomed")
    deleted = client.v1.products.delete(product.id)
    assert deleted.id == product.id
    assert deleted.deleted is True
    with pytest.raises(stripe.InvalidRequestError) as ei:
        client.v1.products.retrieve(product.id)
    assert_stripe_error(
        ei.value,
        status=404,
        type="invalid_request_error",
        code="resource_missing",
        param="id",
        message=f"No such product: '{product.id}'",
    )


def test_retrieving_an_unknown_product_is_404_resource_missing(client, unique_id):
    pid = unique_id("prod_missing")
    with pytest.raises(stripe.InvalidRequestError) as ei:
        client.v1.products.retrieve(pid)
    assert_stripe_error(
        ei.value,
        status=404,
        type="invalid_request_error",
        code="resource_missing",
        param="id",
        message=f"No such product: '{pid}'",
    )


def test_a_product_accepts_eight_images(make_product):
    images = [f"https://example.com/{i}.png" for i in range(8)]
    assert make_product(images=images).images == images


def test_a_product_with_nine_images_is_rejected(make_product):
    with pytest.raises(stripe.InvalidRequestError) as ei:
        make_product(images=[f"https://example.com/{i}.png" for i in range(9)])
    assert_stripe_error(ei.value, status=400, type="invalid_request_error")


def test_a_product_default_price_must_be_a_price_of_that_product(client, make_product):
    mine = make_product(default_price_data={"currency": "usd", "unit_amount": 100})
    other = make_product(default_price_data={"currency": "usd", "unit_amount": 200})
    with pytest.raises(stripe.InvalidRequestError) as ei:
        client.v1.products.update(mine.id, params={"default_price": other.default_price})
    assert_stripe_error(ei.value, status=400, type="invalid_request_error")
    assert client.v1.products.retrieve(mine.id).default_price == mine.default_price


def test_the_module_level_api_works_against_the_target(
    monkeypatch, stripe_target, created, unique_id, run_tag
):
    """stripe.Product.create(api_key=...) with stripe.api_base pointed at the target."""
    monkeypatch.setattr(stripe, "api_base", stripe_target.base_url)
    pid = unique_id("prod")
    product = stripe.Product.create(
        api_key=stripe_target.api_key,
        id=pid,
        name="Module-level",
        metadata={"contract_run": run_tag},
        default_price_data={"currency": "usd", "unit_amount": 4200},
    )
    created.product(product.id)
    created.price(product.default_price)
    assert isinstance(product, stripe.Product)
    assert product.id == pid
    fetched = stripe.Product.retrieve(pid, api_key=stripe_target.api_key, expand=["default_price"])
    assert isinstance(fetched.default_price, stripe.Price)
    assert fetched.default_price.unit_amount == 4200
    prices = stripe.Price.list(api_key=stripe_target.api_key, product=pid)
    assert [p.id for p in prices.data] == [product.default_price]
