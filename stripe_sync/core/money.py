"""Money as Stripe knows it (docs.stripe.com/currencies): currencies, minor units, limits.

Plain Python, no Dagster: the Stripe emulator and the validation rules both use it.
Amounts are `Decimal` from the first character read to the integer sent: never float.
"""

import math
import re
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation

# Presentment currencies Stripe accepts for prices, lowercase, in the order Stripe's own
# "Invalid currency" error lists them (2024).
_STRIPE_CURRENCY_LIST = """
    usd aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd bob brl bsd
    bwp byn bzd cad cdf chf clp cny cop crc cve czk djf dkk dop dzd egp etb eur fjd fkp gbp
    gel gip gmd gnf gtq gyd hkd hnl hrk htg huf idr ils inr isk jmd jod jpy kes kgs khr kmf
    krw kwd kyd kzt lak lbp lkr lrd lsl mad mdl mga mkd mmk mnt mop mur mvr mwk mxn myr mzn
    nad ngn nio nok npr nzd omr pab pen pgk php pkr pln pyg qar ron rsd rub rwf sar sbd scr
    sek sgd shp sle sos srd std szl thb tjs tnd top try ttd twd tzs uah ugx uyu uzs vnd vuv
    wst xaf xcd xof xpf yer zar zmw usdc btn ghs eek lvl svc vef ltl sll mro
"""
SUPPORTED_CURRENCIES: tuple[str, ...] = tuple(_STRIPE_CURRENCY_LIST.split())

_ZERO_DECIMAL = "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf"
ZERO_DECIMAL_CURRENCIES = frozenset(_ZERO_DECIMAL.split())
THREE_DECIMAL_CURRENCIES = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
# ISK is two-decimal in the API for backwards compatibility, but amounts must be whole
# krónur (divisible by 100): docs.stripe.com/currencies#special-cases.
WHOLE_MAJOR_UNIT_CURRENCIES = frozenset({"isk"})

# A recurring price's billing intervals, and the longest count of each: "Maximum of three
# years interval allowed (3 years, 36 months, or 156 weeks)" (the SDK's docstring of
# `interval_count`; three years of days is *unverified*).
RECURRING_INTERVALS = ("day", "week", "month", "year")
MAX_INTERVAL_COUNT = {"day": 3 * 365, "week": 156, "month": 36, "year": 3}

# Stripe's minimum charge amounts in major units (a business rule: a price below them can
# exist, but can't be charged alone). Other currencies have no minimum here.
MINIMUM_CHARGE = {
    **dict.fromkeys(
        ("usd", "eur", "aud", "brl", "cad", "chf", "inr", "nzd", "sgd"), Decimal("0.50")
    ),
    "gbp": Decimal("0.30"),
    "dkk": Decimal("2.50"),
    "hkd": Decimal("4.00"),
    "jpy": Decimal(50),
    "mxn": Decimal(10),
    "nok": Decimal("3.00"),
    "sek": Decimal("3.00"),
    "pln": Decimal("2.00"),
}

# Approximate units of each currency per euro (November 2026), only to turn the maximum
# price, set in euros, into each currency. Other currencies have no maximum here.
UNITS_PER_EUR = {
    "eur": Decimal(1),
    "usd": Decimal("1.10"),
    "gbp": Decimal("0.86"),
    "chf": Decimal("0.95"),
    "jpy": Decimal(165),
    "sek": Decimal("11.5"),
    "nok": Decimal("11.8"),
    "dkk": Decimal("7.46"),
    "pln": Decimal("4.3"),
    "cad": Decimal("1.5"),
    "aud": Decimal("1.65"),
    "nzd": Decimal("1.8"),
    "sgd": Decimal("1.45"),
    "hkd": Decimal("8.6"),
    "mxn": Decimal(20),
    "brl": Decimal(6),
    "inr": Decimal(92),
    "bhd": Decimal("0.41"),
    "kwd": Decimal("0.34"),
}

_PLAIN_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")  # ASCII digits only: "１２" is no plain decimal


class PriceError(ValueError):
    """A catalog price that isn't a usable amount; `code` is the validation reason code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class AmountError(ValueError):
    """An amount that can't be expressed exactly in the currency's minor unit."""


def parse_price(value: object) -> Decimal:
    """A catalog price -> Decimal, only when it can't be misread.

    Numbers from the database are taken as they are; text must be a plain decimal with a
    dot (`12.50`): a comma could be a decimal comma or a thousands separator, so it is
    refused rather than guessed.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        raise PriceError("price_missing", "the product has no price")
    if isinstance(value, bool):
        raise PriceError("price_not_a_number", f"{value} is a boolean, not a price")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PriceError("price_not_a_number", f"{value} is not a finite number")
        value = Decimal(repr(value))  # the shortest decimal that reads back as this float: 0.1
    if isinstance(value, int | Decimal):
        amount = Decimal(value)
        if not amount.is_finite():
            raise PriceError("price_not_a_number", f"{value} is not a finite number")
    else:
        text = str(value).strip()
        if "," in text:
            raise PriceError(
                "price_ambiguous",
                f"{text!r} has a comma, which could be a decimal comma or a thousands separator: write 12.50",
            )
        if text.startswith("-") and _PLAIN_DECIMAL.fullmatch(text[1:]):
            raise PriceError("price_negative", f"{text} is below zero")
        if not _PLAIN_DECIMAL.fullmatch(text):
            raise PriceError("price_not_a_number", f"{text!r} is not a plain decimal like 12.50")
        try:
            amount = Decimal(text)
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
            raise PriceError("price_not_a_number", f"{text!r} is not a number") from None
    if amount < 0:
        raise PriceError("price_negative", f"{amount} is below zero")
    return amount


def minor_unit_exponent(currency: str) -> int:
    """Digits after the decimal point in the currency's minor unit (Stripe's view)."""
    if currency in ZERO_DECIMAL_CURRENCIES:
        return 0
    if currency in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


def allowed_decimals(currency: str) -> int:
    """Decimals a price may have: the minor unit's, but whole krónur for ISK."""
    return 0 if currency in WHOLE_MAJOR_UNIT_CURRENCIES else minor_unit_exponent(currency)


def to_minor_units(amount: Decimal, currency: str, *, round_half_up: bool = False) -> int:
    """`amount` in major units -> Stripe's integer `unit_amount`, exactly (or rounded half-up
    to the allowed decimals when asked)."""
    step = Decimal(1).scaleb(-allowed_decimals(currency))
    if round_half_up:
        amount = amount.quantize(step, rounding=ROUND_HALF_UP)
    elif amount != amount.quantize(step, rounding=ROUND_DOWN):
        raise AmountError(
            f"{amount} {currency.upper()} has more decimals than {currency.upper()} allows "
            f"({allowed_decimals(currency)})"
        )
    return int(amount.scaleb(minor_unit_exponent(currency)))


def price_text(unit_amount: int | None, currency: str | None) -> str:
    """`12.50 EUR` for 1250 eur: the amount in major units, as the catalog writes it."""
    if unit_amount is None or not currency:
        return f"{unit_amount} {currency}"
    return f"{Decimal(unit_amount).scaleb(-minor_unit_exponent(currency)):f} {currency.upper()}"
