"""Row rules: a raw catalog row -> the product Stripe should have, or the reasons it can't.

A bad row never stops the batch: it gets reasons (`code: message`, every rule it breaks)
and is quarantined; warnings (`code: message`) note what was fixed on the way (a dropped
image, a rounded price). The rules and options are listed in docs/how-it-works.md.
"""

import json
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from stripe_sync.core.checkpoints import Checkpoint
from stripe_sync.core.contract import HELD_PRODUCT_ID
from stripe_sync.core.identity import (
    METADATA_PREFIX,
    DesiredPrice,
    DesiredProduct,
    reserved_metadata_keys,
)
from stripe_sync.core.money import (
    MAX_INTERVAL_COUNT,
    MINIMUM_CHARGE,
    RECURRING_INTERVALS,
    SUPPORTED_CURRENCIES,
    UNITS_PER_EUR,
    AmountError,
    PriceError,
    allowed_decimals,
    minor_unit_exponent,
    parse_price,
    to_minor_units,
)
from stripe_sync.core.planner import Action, PlanOptions, SyncState, plan_batch

MAX_IMAGES = 8
MAX_IMAGE_URL_LENGTH = 2_048
# Stripe documents no limit for these; these are conservative (unverified, hence constants).
MAX_NAME_LENGTH = 250
MAX_DESCRIPTION_LENGTH = 40_000
MAX_METADATA_KEYS = 50
MAX_METADATA_KEY_LENGTH = 40
MAX_METADATA_VALUE_LENGTH = 500
# Beyond any price (and Stripe's integer amounts): refused even with skip_validation.
_ABSURD_AMOUNT = Decimal(10) ** 15
# Every control character, but a description keeps line breaks and tabs.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_LAYOUT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

VALIDATED_COLUMNS = (
    "batch", "cms_id", "reasons", "warnings", "name", "description", "images", "active", "currency",
    "unit_amount", "metadata", "prices", "held_prices", "price_reasons", "stripe_product_id", "stripe_price_id", "sync_status", "sync_error", "synced_at", "sync_hash",
    "held_product_id",
)  # fmt: skip
_STATE_COLUMNS = (
    "stripe_product_id", "stripe_price_id", "sync_status", "sync_error", "synced_at", "sync_hash",
)  # fmt: skip


@dataclass(frozen=True)
class ValidationRules:
    default_currency: str = "eur"
    price_unit: str = "major"  # of the catalog's prices: major (12.50) or minor (1250)
    prices_unit: str = "major"  # of the prices model's amounts
    round_prices: bool = False
    allow_free_products: bool = False
    skip_validation: bool = False  # skips the business rules only
    max_price_eur: Decimal = Decimal(1000000)


class _Row:
    """Collects the reasons and warnings of one row."""

    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.warnings: list[str] = []

    def invalid(self, code: str, message: str) -> None:
        self.reasons.append(f"{code}: {message}")

    def warn(self, code: str, message: str) -> None:
        self.warnings.append(f"{code}: {message}")


def validate_batch(raw: pd.DataFrame, rules: ValidationRules) -> pd.DataFrame:
    """The `ValidatedProducts` frame for a raw batch: one row per catalog row."""
    rows = records(raw)
    id_counts = Counter(_text(row["id"]) for row in rows)
    validated = [
        _validate_row(row, rules, duplicate=id_counts[_text(row["id"])] > 1) for row in rows
    ]
    # Rows sharing an id share one write-back: give each the reasons of all of them.
    shared: dict[str, tuple[str, ...]] = {}
    for record in validated:
        if id_counts[record["cms_id"]] > 1:
            shared[record["cms_id"]] = tuple(
                dict.fromkeys(shared.get(record["cms_id"], ()) + record["reasons"])
            )
    for record in validated:
        record["reasons"] = shared.get(record["cms_id"], record["reasons"])
    # Built column by column as object: pandas would turn integer amounts beside None into floats.
    return pd.DataFrame(
        {c: pd.Series([r[c] for r in validated], dtype=object) for c in VALIDATED_COLUMNS}
    )


def _validate_row(
    raw: dict[str, Any], rules: ValidationRules, *, duplicate: bool
) -> dict[str, Any]:
    row = _Row()
    cms_id = _text(raw["id"])
    if not cms_id.strip():
        row.invalid("id_missing", "the row has no id")
    if duplicate:
        row.invalid("id_duplicate", f"another row has the id {cms_id!r}")
    name = _clean(raw.get("name"), _CONTROL)
    if not name:
        row.invalid("name_missing", "the product has no name")
    elif len(name) > MAX_NAME_LENGTH:
        row.invalid(
            "name_too_long", f"the name has {len(name)} characters; at most {MAX_NAME_LENGTH}"
        )
    description = _clean(raw.get("description"), _CONTROL_BUT_LAYOUT) or None
    if description and len(description) > MAX_DESCRIPTION_LENGTH:
        row.invalid(
            "description_too_long",
            f"the description has {len(description)} characters; at most {MAX_DESCRIPTION_LENGTH}",
        )
    if "prices" in raw:  # a prices model: the default price is the product's own
        prices, held, price_reasons = _prices(raw["prices"], rules, row)
        currency, unit_amount = (
            (prices[0].currency, prices[0].unit_amount) if prices else ("", None)
        )
    else:
        prices, held, price_reasons = (), (), ()
        currency = _currency(raw.get("currency"), rules, row)
        unit_amount = _unit_amount(raw.get("price"), currency, rules, row)
    metadata = _metadata(raw, row)
    images = tuple(_images(raw.get("images"), row))
    return {
        "batch": raw["batch"],
        "cms_id": cms_id,
        "reasons": tuple(row.reasons),
        "warnings": tuple(row.warnings),
        "name": name,
        "description": description,
        "images": images,
        "active": True if _missing(raw.get("active")) else bool(raw.get("active")),
        "currency": currency,
        "unit_amount": unit_amount,
        "metadata": metadata,
        "prices": prices,
        "held_prices": held,
        "price_reasons": price_reasons,
        **{
            column: None if _missing(raw.get(column)) else raw.get(column)
            for column in _STATE_COLUMNS
        },
        # What another tool synced the row as, in a column of the catalog's own.
        "held_product_id": None if _missing(held := raw.get(HELD_PRODUCT_ID)) else _text(held),
    }


def _prices(
    raw_prices: Sequence[dict[str, Any]], rules: ValidationRules, product: _Row
) -> tuple[tuple[DesiredPrice, ...], tuple[str, ...], tuple[str, ...]]:
    """A product's price rows: the valid active ones as Stripe must have them (the default
    first), the ids of the invalid ones (quarantined: their Stripe prices are left alone)
    and why each is invalid (`price <id>: code: message`). A product with no valid active
    price is invalid itself."""
    counts = Counter(_text(raw["id"]) for raw in raw_prices)
    valid, held, reasons = [], [], []
    for position, raw in enumerate(raw_prices):  # in the model's order: by id
        key = _text(raw["id"])
        price = _Row()
        if not key.strip():
            price.invalid("price_id_missing", "the price row has no id")
        elif counts[key] > 1:
            price.invalid("price_id_duplicate", f"another price row has the id {key!r}")
        currency = _currency(raw.get("currency"), rules, price)
        unit_amount = _unit_amount(
            raw.get("amount"), currency, replace(rules, price_unit=rules.prices_unit), price
        )
        interval, interval_count = _interval(raw.get("interval"), raw.get("interval_count"), price)
        if price.reasons:
            held.append(key)
            reasons += [f"price {key}: {reason}" for reason in price.reasons]
            continue
        if not _flag(raw.get("active"), default=True):
            continue  # an inactive row: its Stripe price is archived
        nickname = _clean(raw.get("nickname"), _CONTROL) or None
        desired = DesiredPrice(key, currency, unit_amount, interval, interval_count, nickname)
        valid.append((not _flag(raw.get("default"), default=False), position, desired))
    if not valid:
        product.invalid("prices_missing", "the product has no valid active price")
        return (), tuple(held), tuple(reasons)
    # The default first (the first flagged, else the first by id), then the rest by id.
    default = min(valid, key=lambda item: item[:2])
    rest = [desired for _, _, desired in valid if desired is not default[2]]
    return (default[2], *rest), tuple(held), tuple(reasons)


def _interval(interval: Any, count: Any, row: _Row) -> tuple[str | None, int]:
    """A price's billing interval (None: one-time) and its count, as Stripe allows them."""
    interval = _text(interval).strip().lower() or None
    if interval is not None and interval not in RECURRING_INTERVALS:
        row.invalid(
            "price_interval_invalid",
            f"{interval!r} is no billing interval: use day, week, month or year (empty: one-time)",
        )
        return None, 1
    if _missing(count) or _text(count).strip() == "":
        return interval, 1
    try:
        number = Decimal(_text(count).strip())
    except ArithmeticError:
        number = Decimal(0)
    longest = MAX_INTERVAL_COUNT.get(interval or "", 1)
    if not number.is_finite() or number != number.to_integral_value() or not 1 <= number <= longest:
        row.invalid(
            "price_interval_count_invalid",
            f"{_text(count)!r} is no interval count"
            + (
                f" for {interval}: a whole number from 1 to {longest}"
                if interval
                else ": a one-time price has none"
            ),
        )
        return interval, 1
    return interval, int(number)


def _flag(value: Any, *, default: bool) -> bool:
    """A boolean cell: true, 1, yes, t (any case) is true; empty is the default."""
    if _missing(value) or _text(value).strip() == "":
        return default
    if isinstance(value, bool):
        return value
    return _text(value).strip().lower() in ("true", "t", "1", "yes", "y")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _text(value: Any) -> str:
    return "" if _missing(value) else str(value)


def _clean(value: Any, control: re.Pattern) -> str:
    """NFC, without control characters, trimmed."""
    return control.sub("", unicodedata.normalize("NFC", _text(value))).strip()


def _currency(value: Any, rules: ValidationRules, row: _Row) -> str:
    currency = _text(value).strip().lower() or rules.default_currency
    if currency not in SUPPORTED_CURRENCIES:
        row.invalid("currency_unsupported", f"{currency!r} is not a currency Stripe supports")
    return currency


def _unit_amount(value: Any, currency: str, rules: ValidationRules, row: _Row) -> int | None:
    try:
        amount = parse_price(None if _missing(value) else value)  # pandas' NaN is a missing value
    except PriceError as error:
        row.invalid(error.code, str(error))
        return None
    if rules.price_unit == "minor" and currency in SUPPORTED_CURRENCIES:
        if amount != amount.to_integral_value():
            row.invalid(
                "price_not_a_number",
                f"{amount} is not a whole number of minor units (the catalog's price_unit is minor)",
            )
            return None
        amount = amount.scaleb(-minor_unit_exponent(currency))
    if amount >= _ABSURD_AMOUNT:
        row.invalid("price_above_maximum", f"{amount} is beyond any price Stripe can hold")
        return None
    if currency not in SUPPORTED_CURRENCIES:
        return None
    try:
        unit_amount = to_minor_units(amount, currency)
    except AmountError as error:
        if not rules.round_prices:
            row.invalid("price_too_precise", str(error))
            return None
        unit_amount = to_minor_units(amount, currency, round_half_up=True)
        rounded = amount.quantize(
            Decimal(1).scaleb(-allowed_decimals(currency)), rounding=ROUND_HALF_UP
        )
        row.warn("price_rounded", f"{amount} {currency.upper()} rounded to {rounded}")
    if not rules.skip_validation:
        _business_limits(amount, currency, rules, row)
    return unit_amount


def _business_limits(amount: Decimal, currency: str, rules: ValidationRules, row: _Row) -> None:
    label = currency.upper()
    if amount == 0:
        if not rules.allow_free_products:
            row.invalid(
                "price_free_not_allowed", "the price is 0 and free products are not allowed"
            )
        return
    minimum = MINIMUM_CHARGE.get(currency)
    if minimum is not None and amount < minimum:
        row.invalid(
            "price_below_minimum",
            f"{amount} {label} is below Stripe's minimum charge of {minimum} {label}",
        )
    rate = UNITS_PER_EUR.get(currency)
    if rate is not None and amount > rules.max_price_eur * rate:
        row.invalid(
            "price_above_maximum",
            f"{amount} {label} is above the maximum of {rules.max_price_eur} EUR ({rules.max_price_eur * rate} {label})",
        )


def _images(value: Any, row: _Row) -> list[str]:
    if _missing(value) or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = [value]  # a single URL
    if not isinstance(value, list | tuple):
        row.warn("image_dropped", "images is neither a list nor a JSON array; no image kept")
        return []
    urls = []
    for url in value:
        if _is_image_url(url):
            urls.append(url)
        else:
            row.warn(
                "image_dropped",
                f"{str(url)[:80]!r} is not an absolute https URL of at most {MAX_IMAGE_URL_LENGTH} characters",
            )
    if len(urls) > MAX_IMAGES:
        row.warn(
            "images_truncated",
            f"{len(urls)} images; Stripe takes {MAX_IMAGES}, the rest were dropped",
        )
    return urls[:MAX_IMAGES]


def _is_image_url(url: Any) -> bool:
    if not isinstance(url, str) or len(url) > MAX_IMAGE_URL_LENGTH:
        return False
    parts = urlsplit(url)
    return (
        parts.scheme == "https"
        and bool(parts.netloc)
        and not _CONTROL.search(url)
        and " " not in url
    )


def _metadata(raw: dict[str, Any], row: _Row) -> tuple[tuple[str, str], ...]:
    """Mapped catalog columns (read as `metadata.<column>`) that have a value."""
    metadata = {
        key.removeprefix(METADATA_PREFIX): _text(value)
        for key, value in raw.items()
        if key.startswith(METADATA_PREFIX) and _text(value)
    }
    problems = [
        f"key {key!r} is longer than {MAX_METADATA_KEY_LENGTH} characters or has [ or ]"
        for key in metadata
        if len(key) > MAX_METADATA_KEY_LENGTH or "[" in key or "]" in key
    ] + [
        f"the value of {key!r} has {len(value)} characters; at most {MAX_METADATA_VALUE_LENGTH}"
        for key, value in metadata.items()
        if len(value) > MAX_METADATA_VALUE_LENGTH
    ]
    if len(metadata) + len(reserved_metadata_keys()) > MAX_METADATA_KEYS:
        problems.append(
            f"{len(metadata)} mapped keys plus the pipeline's own exceed Stripe's {MAX_METADATA_KEYS}"
        )
    for problem in problems:
        row.invalid("metadata_invalid", problem)
    return tuple(sorted(metadata.items()))


def records(frame: pd.DataFrame) -> list[dict]:
    """The frame's rows as dicts of Python values, like `to_dict("records")` but column by
    column (`tolist` converts numpy values in C): its per-cell boxing was a third of the
    time of a million-row plan."""
    names = list(frame.columns)
    columns = [frame[name].tolist() for name in names]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def planning_inputs(
    validated: pd.DataFrame,
) -> Iterator[tuple[str, DesiredProduct | None, tuple[str, ...], SyncState]]:
    """Each validated row as the planner takes it."""
    for row in records(validated):
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
                extra_metadata=tuple(row["metadata"]),
                prices=tuple(row["prices"]),
                held_prices=tuple(row["held_prices"]),
            )
        state = SyncState(
            row["stripe_product_id"],
            row["stripe_price_id"],
            row["sync_status"],
            row["sync_hash"],
            row["held_product_id"],
        )
        yield row["cms_id"], desired, tuple(row["reasons"]), state


def plan_frame(
    validated: pd.DataFrame,
    batch_keys: Sequence[str],
    checkpoints: Callable[[str], Mapping[str, Checkpoint]],
    options: PlanOptions,
    by_metadata: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, list[Action]]:
    """The plan of each batch: its validated rows against its checkpoints (`checkpoints`: a
    batch's, as read once; a batch whose rows were all deleted still has its deletions
    planned); `by_metadata` as `plan_batch` takes it."""
    return {
        batch: plan_batch(
            planning_inputs(validated[validated["batch"] == batch]),
            checkpoints(batch),
            options,
            by_metadata,
        )
        for batch in batch_keys
    }
