"""Stripe's errors as users see them: classified once, with a readable message."""

from __future__ import annotations

import textwrap

import stripe

from stripe_sync.core.errors import ErrorKind, classify

# What stripe-python raises when the connection is refused, on a list of 100 ids.
IDS = "&".join(f"ids%5B{n}%5D=cms_sku-{n:05d}" for n in range(100))
NETWORK_ERROR = (
    "ConnectionError: HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with "
    f"url: /v1/products?{IDS}&limit=100&expand%5B0%5D=data.default_price (Caused by "
    "NewConnectionError(\"HTTPConnection(host='127.0.0.1', port=9): Failed to establish a new "
    'connection: [Errno 111] Connection refused"))'
)
REFUSED = stripe.APIConnectionError(
    textwrap.fill(
        "Unexpected error communicating with Stripe.  If this problem persists, let us know "
        "at support@stripe.com."
    )
    + f"\n\n(Network error: {NETWORK_ERROR})",
    should_retry=True,
)


def test_a_connection_error_names_the_request_by_method_and_path_without_its_query_string():
    failure = classify(REFUSED, "GET /v1/products")

    assert failure.kind is ErrorKind.RETRYABLE
    assert failure.message.startswith(
        "GET /v1/products: Unexpected error communicating with Stripe. (Network error: "
    )
    assert "Max retries exceeded with url: /v1/products (Caused by" in failure.message
    assert failure.message.endswith('[Errno 111] Connection refused")))')
    assert "ids%5B" not in failure.message and len(failure.message) < 400


def test_stripes_sentence_asking_to_write_to_its_support_is_left_out():
    assert "support@stripe.com" not in classify(REFUSED, "GET /v1/products").message


def test_stripes_own_answer_is_kept_as_it_says_it():
    error = stripe.InvalidRequestError(
        "No such product: 'cms_x'",
        param="id",
        code="resource_missing",
        http_status=404,
        json_body={"error": {"message": "No such product: 'cms_x'", "code": "resource_missing"}},
    )

    failure = classify(error, "POST /v1/products/{id}")

    assert (failure.kind, failure.message) == (ErrorKind.BAD_DATA, "No such product: 'cms_x'")
