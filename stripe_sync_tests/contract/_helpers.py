"""Small assertion helpers shared by the contract tests."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

import stripe

T = TypeVar("T")

# The Price object (docs.stripe.com/api/prices/object; STRIPE_FACTS.md "Objects").
PRICE_FIELDS = {
    "id",
    "object",
    "active",
    "billing_scheme",
    "created",
    "currency",
    "custom_unit_amount",
    "livemode",
    "lookup_key",
    "metadata",
    "nickname",
    "product",
    "recurring",
    "tax_behavior",
    "tiers_mode",
    "transform_quantity",
    "type",
    "unit_amount",
    "unit_amount_decimal",
}


def assert_stripe_error(
    exc: stripe.StripeError,
    *,
    status: int,
    type: str | None = None,
    code: str | None = None,
    param: str | None = None,
    message: str | None = None,
    message_re: str | None = None,
) -> None:
    """Check an error raised by stripe-python against Stripe's error body."""
    assert exc.http_status == status, (exc.http_status, exc.json_body)
    err = (exc.json_body or {}).get("error") if isinstance(exc.json_body, dict) else None
    assert isinstance(err, dict), f"no error object in body: {exc.http_body!r}"
    if type is not None:
        assert err.get("type") == type, err
    if code is not None:
        assert err.get("code") == code, err
    if param is not None:
        assert err.get("param") == param, err
    if message is not None:
        assert err.get("message") == message, err
    if message_re is not None:
        assert re.fullmatch(message_re, err.get("message") or ""), err
    rid = exc.request_id or (exc.headers or {}).get("request-id")
    assert rid and rid.startswith("req_"), f"error response without Request-Id: {exc.headers!r}"


def poll(
    fn: Callable[[], T],
    until: Callable[[T], bool],
    *,
    timeout: float,
    interval: float,
) -> tuple[T, float]:
    """Call fn until until(result) holds or timeout passes; returns (last result, seconds)."""
    started = time.monotonic()
    while True:
        result = fn()
        elapsed = time.monotonic() - started
        if until(result) or elapsed >= timeout:
            return result, elapsed
        time.sleep(interval)


def ids_of(objs: Any) -> list[str]:
    return [o["id"] if isinstance(o, dict) else o.id for o in objs]
