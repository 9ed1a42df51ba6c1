"""Row rules: a raw catalog row -> the product Stripe should have, or the reasons it can't.

A bad row never stops the batch: it gets reasons (`code: message`) and is quarantined.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import pandas as pd

from stripe_sync.core.identity import DesiredProduct
from stripe_sync.core.money import SUPPORTED_CURRENCIES, AmountError, to_minor_units
from stripe_sync.core.planner import SyncState

MAX_IMAGES = 8
_PLAIN_DECIMAL = re.compile(r"\d+(\.\d+)?")


@dataclass(frozen=True)
class ValidationRules:
    default_currency: str = "eur"


def validate_batch(raw: pd.DataFrame, rules: ValidationRules) -> pd.DataFrame:
    """The `ValidatedProducts` frame for a raw batch: one row per catalog row."""
    records = [_validate_row(row, rules) for row in raw.to_dict("records")]
    columns = [
        "batch", "cms_id", "reasons", "name", "description", "images", "active", "currency", "unit_amount",
        "stripe_product_id", "stripe_price_id", "sync_status", "sync_error", "sync_hash",
    ]  # fmt: skip
    # Built column by column as object: pandas would turn integer amounts beside None into floats.
    return pd.DataFrame(
        {column: pd.Series([r[column] for r in records], dtype=object) for column in columns}
    )


def _validate_row(row: dict[str, Any], rules: ValidationRules) -> dict[str, Any]:
    reasons: list[str] = []
    name = _text(row.get("name"))
    if not name:
        reasons.append("name_missing: the product has no name")
    description = _text(row.get("description")) or None
    currency = (_text(row.get("currency")) or rules.default_currency).lower()
    if currency not in SUPPORTED_CURRENCIES:
        reasons.append(f"currency_unsupported: {currency!r} is not a currency Stripe supports")
    unit_amount = None
    amount = _amount(row.get("price"), reasons)
    if amount is not None and currency in SUPPORTED_CURRENCIES:
        try:
            unit_amount = to_minor_units(amount, currency)
        except AmountError as error:
            reasons.append(f"price_precision: {error}")
    active = row.get("active")
    return {
        "batch": row["batch"],
        "cms_id": str(row["id"]),
        "reasons": tuple(reasons),
        "name": name,
        "description": description,
        "images": tuple(_images(row.get("images"))),
        "active": True if _missing(active) else bool(active),
        "currency": currency,
        "unit_amount": unit_amount,
        **{
            column: None if _missing(row.get(column)) else row.get(column)
            for column in _STATE_COLUMNS
        },
    }


_STATE_COLUMNS = ("stripe_product_id", "stripe_price_id", "sync_status", "sync_error", "sync_hash")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _text(value: Any) -> str:
    return "" if _missing(value) else str(value).strip()


def _amount(value: Any, reasons: list[str]) -> Decimal | None:
    if _missing(value) or value == "":
        reasons.append("price_missing: the product has no price")
        return None
    text = str(value).strip()
    if isinstance(value, bool) or not _PLAIN_DECIMAL.fullmatch(text):
        reasons.append(
            f"price_unparseable: {text!r} is not a plain non-negative decimal like 12.50"
        )
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        reasons.append(f"price_unparseable: {text!r} is not a number")
        return None


def _images(value: Any) -> list[str]:
    if _missing(value) or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = [value]
    urls = [url for url in value if isinstance(url, str) and url.startswith("https://")]
    return urls[:MAX_IMAGES]


def planning_inputs(
    validated: pd.DataFrame,
) -> Iterator[tuple[str, DesiredProduct | None, tuple[str, ...], SyncState]]:
    """Each validated row as the planner takes it."""
    for row in validated.to_dict("records"):
        desired = None
        if not row["reasons"]:
            desired = DesiredProduct(
                cms_id=row["cms_id"],
                name=row["name"],
                description=row["description"],
                images=tuple(row["images"]),
                active=row["active"],
                currency=row["currency"],
                unit_amount=row["unit_amount"],
            )
        state = SyncState(
            row["stripe_product_id"], row["stripe_price_id"], row["sync_status"], row["sync_hash"]
        )
        yield row["cms_id"], desired, tuple(row["reasons"]), state
