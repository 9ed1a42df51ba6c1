"""How a Stripe product and its default price compare with the desired product: the one
comparison that reconciling (applier.py) and verification (verify.py) share."""

from __future__ import annotations

from stripe_sync.core.identity import DesiredProduct


def field_differs(name: str, product: dict, wanted: dict) -> bool:
    """Whether the Stripe product's field `name` differs from `wanted` (`product_fields()`).

    Metadata compares only the keys the pipeline owns, not the content hash; an empty
    description is no description.
    """
    if name == "metadata":
        current = product.get("metadata") or {}
        return any(
            current.get(key) != value
            for key, value in wanted["metadata"].items()
            if key != "sync_hash"
        )
    if name == "description":
        return (product.get("description") or None) != wanted.get("description")
    return product.get(name) != wanted.get(name)


def is_desired_price(price: dict, desired: DesiredProduct) -> bool:
    """Whether a Stripe price (a dict, possibly empty) is the product's one price: active and
    one-time, with the desired amount and currency (an adopted product's own one is reused)."""
    return (
        price.get("currency") == desired.currency
        and price.get("unit_amount") == desired.unit_amount
        and price.get("active", False)
        and not price.get("recurring")
    )
