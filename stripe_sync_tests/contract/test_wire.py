"""Wire format: auth, Request-Id, error bodies, the account, 429 shape."""

from __future__ import annotations

import pytest
import stripe

from ._helpers import assert_stripe_error


def test_a_request_without_an_api_key_is_401_invalid_request_error(raw_http):
    resp = raw_http("GET", "/v1/products", form={"limit": 1}, key=None)
    assert resp.status == 401
    assert resp.body["error"]["type"] == "invalid_request_error"
    assert resp.body["error"]["message"]
    assert resp.headers.get("Request-Id", "").startswith("req_")


def test_a_malformed_api_key_is_401_authentication_error(stripe_target):
    bad = stripe.StripeClient(
        "not_a_stripe_key", base_addresses={"api": stripe_target.base_url}, max_network_retries=0
    )
    with pytest.raises(stripe.AuthenticationError) as ei:
        bad.v1.products.list(params={"limit": 1})
    assert_stripe_error(ei.value, status=401, type="invalid_request_error")


def test_a_malformed_api_key_on_raw_http_is_401(raw_http):
    resp = raw_http("GET", "/v1/account", key="sk_nonsense")
    assert resp.status == 401
    assert resp.body["error"]["type"] == "invalid_request_error"


def test_every_response_carries_a_request_id(raw_http, make_product, unique_id):
    product = make_product()
    responses = {
        "200 retrieve": raw_http("GET", f"/v1/products/{product.id}"),
        "200 list": raw_http("GET", "/v1/prices", form={"product": product.id}),
        "200 update": raw_http(
            "POST", f"/v1/products/{product.id}", form={"metadata[touched]": "1"}
        ),
        "400": raw_http("POST", "/v1/products", form={"foo": "bar"}),
        "401": raw_http("GET", "/v1/products", key=None),
        "404": raw_http("GET", f"/v1/products/{unique_id('prod_missing')}"),
    }
    seen = set()
    for label, resp in responses.items():
        assert str(resp.status) == label.split()[0], (label, resp.status, resp.body)
        rid = resp.headers.get("Request-Id", "")
        assert rid.startswith("req_"), (label, dict(resp.headers))
        seen.add(rid)
    assert len(seen) == len(responses), "request ids must be unique"


def test_an_error_body_has_type_code_message_and_param(raw_http):
    resp = raw_http("POST", "/v1/products", form={"name": "x", "foo": "bar"})
    assert resp.status == 400
    assert resp.headers.get("Content-Type", "").startswith("application/json")
    err = resp.body["error"]
    assert {"type", "code", "message", "param"} <= set(err)
    assert (err["type"], err["code"], err["param"]) == (
        "invalid_request_error",
        "parameter_unknown",
        "foo",
    )


def test_requests_are_form_encoded_with_bracket_notation(raw_http, created, unique_id, run_tag):
    pid = unique_id("prod")
    form = [
        ("id", pid),
        ("name", "Raw form"),
        ("metadata[contract_run]", run_tag),
        ("metadata[cms_id]", "42"),
        ("images[0]", "https://example.com/a.png"),
        ("images[1]", "https://example.com/b.png"),
        ("default_price_data[currency]", "usd"),
        ("default_price_data[unit_amount]", "1250"),
        ("shippable", "false"),
        ("expand[0]", "default_price"),
    ]
    resp = raw_http("POST", "/v1/products", form=form)
    created.product(pid)
    assert resp.status == 200, resp.body
    body = resp.body
    assert body["id"] == pid
    assert body["metadata"] == {"contract_run": run_tag, "cms_id": "42"}
    assert body["images"] == ["https://example.com/a.png", "https://example.com/b.png"]
    assert body["shippable"] is False
    assert body["default_price"]["object"] == "price"
    assert body["default_price"]["unit_amount"] == 1250
    created.price(body["default_price"]["id"])
    listed = raw_http(
        "GET", "/v1/products", form=[("ids[0]", pid), ("expand[0]", "data.default_price")]
    )
    assert listed.status == 200
    assert [p["id"] for p in listed.body["data"]] == [pid]
    assert listed.body["data"][0]["default_price"]["id"] == body["default_price"]["id"]


def test_the_account_endpoint_returns_the_account(client):
    account = client.v1.accounts.retrieve_current()
    assert account.object == "account"
    assert isinstance(account.id, str) and account.id.startswith("acct_")
    assert account.last_response.request_id.startswith("req_")


@pytest.mark.emulator_only
def test_over_the_rate_limit_stripe_python_raises_rate_limit_error_429(client, emulator):
    emulator.configure(rate_limit=1)
    with pytest.raises(stripe.RateLimitError) as ei:
        for _ in range(5):
            client.v1.products.list(params={"limit": 1})
    exc = ei.value
    assert_stripe_error(exc, status=429, code="rate_limit")
    assert exc.error.code == "rate_limit"
    assert exc.headers.get("Stripe-Should-Retry") in (None, "false")  # a plain 429
