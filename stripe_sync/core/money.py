"""Currencies as Stripe knows them (docs.stripe.com/currencies).

Plain Python, no Dagster: the Stripe emulator and the validation rules both use it.
"""

from decimal import ROUND_DOWN, Decimal

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

ZERO_DECIMAL_CURRENCIES = frozenset(
    [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ]
)
THREE_DECIMAL_CURRENCIES = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])
# ISK is two-decimal in the API for backwards compatibility, but amounts must be whole
# krónur (divisible by 100): docs.stripe.com/currencies#special-cases.
WHOLE_MAJOR_UNIT_CURRENCIES = frozenset({"isk"})


class AmountError(ValueError):
    """An amount that can't be expressed exactly in the currency's minor unit."""


def minor_unit_exponent(currency: str) -> int:
    """Digits after the decimal point in the currency's minor unit (Stripe's view)."""
    if currency in ZERO_DECIMAL_CURRENCIES:
        return 0
    if currency in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


def to_minor_units(amount: Decimal, currency: str) -> int:
    """`amount` in major units -> Stripe's integer `unit_amount`, exactly or not at all."""
    exponent = minor_unit_exponent(currency)
    allowed_decimals = 0 if currency in WHOLE_MAJOR_UNIT_CURRENCIES else exponent
    if amount != amount.quantize(Decimal(1).scaleb(-allowed_decimals), rounding=ROUND_DOWN):
        raise AmountError(
            f"{amount} {currency.upper()} has more decimals than {currency.upper()} allows ({allowed_decimals})"
        )
    return int(amount.scaleb(exponent))
