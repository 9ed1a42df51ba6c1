import pytest

from stripe_sync.core.identity import (
    DesiredProduct,
    changed_fields,
    idempotency_key,
    stripe_product_id,
)


def desired(**changes) -> DesiredProduct:
    fields = {"cms_id": "42", "name": "Hat", "description": None, "images": ("https://a/x.png",), "active": True,
              "currency": "eur", "unit_amount": 1250}  # fmt: skip
    return DesiredProduct(**{**fields, **changes})


@pytest.mark.parametrize(
    ("cms_id", "expected"), [("42", "cms_42"), ("sku-00001", "cms_sku-00001"), ("A_b", "cms_A_b")]
)
def test_a_plain_catalog_id_becomes_cms_prefixed(cms_id, expected):
    assert stripe_product_id(cms_id) == expected


@pytest.mark.parametrize("cms_id", ["a b", "a/b", "ümlaut", "x" * 65, "a.b", ""])
def test_an_id_stripe_cant_hold_becomes_a_hash_with_its_own_prefix(cms_id):
    product_id = stripe_product_id(cms_id)
    assert product_id.startswith("cmsx_") and len(product_id) == 5 + 32
    assert stripe_product_id(cms_id) == product_id  # deterministic


def test_hashed_ids_of_different_catalog_ids_differ():
    assert stripe_product_id("a b") != stripe_product_id("a  b")


def test_metadata_carries_the_exact_catalog_id_and_the_content_hash():
    metadata = desired(cms_id="a/b").product_fields()["metadata"]
    assert metadata["cms_id"] == "a/b"
    assert metadata["managed_by"] == "stripe_sync"
    assert metadata["sync_hash"] == desired(cms_id="a/b").sync_hash


def test_the_content_hash_is_stable_and_names_the_fields_that_changed():
    before = desired()
    assert changed_fields(before.sync_hash, desired()) == ()
    assert changed_fields(before.sync_hash, desired(name="Cap")) == ("name",)
    assert changed_fields(before.sync_hash, desired(unit_amount=1300, images=())) == (
        "images",
        "price",
    )
    assert changed_fields(before.sync_hash, desired(currency="usd")) == ("price",)


@pytest.mark.parametrize("stored", [None, "", "v0:name=1", "v1:garbage", "v1:name=1"])
def test_an_unreadable_stored_hash_means_the_changes_are_unknown(stored):
    assert changed_fields(stored, desired()) is None


def test_the_same_write_gets_the_same_idempotency_key_and_another_write_another():
    params = {"name": "Hat"}
    assert idempotency_key("update", "cms_42", params) == idempotency_key(
        "update", "cms_42", dict(params)
    )
    assert idempotency_key("update", "cms_42", params) != idempotency_key(
        "update", "cms_42", {"name": "Cap"}
    )
    assert len(idempotency_key("update", "x" * 300, params)) <= 255


def test_a_price_lookup_key_names_product_currency_and_amount():
    assert desired().price_lookup_key() == "stripe_sync:cms_42:eur:1250"
