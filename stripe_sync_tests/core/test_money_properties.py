"""Property-based tests (hypothesis) of price parsing and minor-unit conversion.

The expectations are written out from docs/how-it-works.md "Validation rules" and Stripe's
currency table (STRIPE_FACTS.md), independently of stripe_sync.core.money.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from stripe_sync.core.money import (
    AmountError,
    PriceError,
    minor_unit_exponent,
    parse_price,
    to_minor_units,
)

# currency -> (exponent of Stripe's unit_amount, decimals a price may have)
TWO_DECIMAL = {c: (2, 2) for c in ("eur", "usd", "gbp", "chf", "sek", "aud", "mxn", "inr")}
ZERO_DECIMAL = {c: (0, 0) for c in ("jpy", "krw", "vnd", "clp", "xof", "bif", "pyg", "ugx")}
THREE_DECIMAL = {c: (3, 3) for c in ("bhd", "jod", "kwd", "omr", "tnd")}
WHOLE_UNITS = {"isk": (2, 0)}  # two-decimal in the API, but whole krónur only
CURRENCIES = {**TWO_DECIMAL, **ZERO_DECIMAL, **THREE_DECIMAL, **WHOLE_UNITS}
MAX_AMOUNT = 10**9

PRICE_CODES = {"price_missing", "price_not_a_number", "price_ambiguous", "price_negative"}

fast = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _code(value: object) -> str:
    """The PriceError code parse_price raises for `value` (fails if it accepts it)."""
    with pytest.raises(PriceError) as raised:
        accepted = parse_price(value)
        pytest.fail(f"parse_price({value!r}) accepted it as {accepted!r}")
    assert raised.value.code in PRICE_CODES, raised.value.code
    return raised.value.code


@st.composite
def exact_amounts(draw):
    """(currency, amount) with at most the decimals the currency allows, in [0, 10^9]."""
    currency = draw(st.sampled_from(sorted(CURRENCIES)))
    decimals = draw(st.integers(0, CURRENCIES[currency][1]))
    units = draw(st.integers(0, MAX_AMOUNT * 10**decimals))
    return currency, Decimal(units).scaleb(-decimals)


@st.composite
def too_precise_amounts(draw):
    """(currency, amount) with exactly one decimal more than the currency allows."""
    currency = draw(st.sampled_from(sorted(CURRENCIES)))
    decimals = CURRENCIES[currency][1] + 1
    units = draw(st.integers(0, MAX_AMOUNT * 10**decimals).filter(lambda n: n % 10))
    return currency, Decimal(units).scaleb(-decimals)


def _half_up(amount: Decimal, currency: str) -> int:
    exponent, decimals = CURRENCIES[currency]
    rounded = amount.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    return int(rounded.scaleb(exponent))


# ----------------------------------------------------------------- the currency table


def test_the_sampled_currencies_have_stripes_exponents():
    assert {c: minor_unit_exponent(c) for c in CURRENCIES} == {
        c: exponent for c, (exponent, _) in CURRENCIES.items()
    }


# ----------------------------------------------------------------- exact round trips


@fast
@given(exact_amounts())
@example(("eur", Decimal("12.50")))
@example(("eur", Decimal("0.00")))
@example(("jpy", Decimal(1000000000)))
@example(("bhd", Decimal("999999999.999")))
@example(("isk", Decimal(12)))
def test_a_plain_decimal_string_parses_back_to_the_same_amount_and_converts_exactly(case):
    currency, amount = case
    text = format(amount, "f")
    assert re.fullmatch(r"[0-9]+(\.[0-9]+)?", text), text  # plain: no exponent, no sign

    parsed = parse_price(text)

    assert parsed == amount
    assert parse_price(f"  {text} ") == amount  # surrounding spaces are allowed
    assert parse_price(amount) == amount
    minor = to_minor_units(parsed, currency)
    assert type(minor) is int
    assert minor == int(amount.scaleb(minor_unit_exponent(currency)))
    assert to_minor_units(parsed, currency, round_half_up=True) == minor  # nothing to round


@fast
@given(st.sampled_from(sorted(TWO_DECIMAL)), st.integers(0, MAX_AMOUNT * 100))
def test_two_decimal_minor_units_are_cents(currency, cents):
    assert to_minor_units(Decimal(cents).scaleb(-2), currency) == cents


@fast
@given(st.sampled_from(sorted(ZERO_DECIMAL)), st.integers(0, MAX_AMOUNT))
def test_zero_decimal_minor_units_are_the_amount(currency, units):
    assert to_minor_units(Decimal(units), currency) == units


@fast
@given(st.sampled_from(sorted(THREE_DECIMAL)), st.integers(0, MAX_AMOUNT * 1000))
def test_three_decimal_minor_units_are_thousandths(currency, thousandths):
    assert to_minor_units(Decimal(thousandths).scaleb(-3), currency) == thousandths


@fast
@given(st.integers(0, MAX_AMOUNT))
def test_isk_takes_whole_kronur_and_stripe_counts_them_in_hundredths(kronur):
    assert to_minor_units(Decimal(kronur), "isk") == kronur * 100
    assert to_minor_units(Decimal(f"{kronur}.00"), "isk") == kronur * 100  # .00 is whole


@fast
@given(exact_amounts(), st.integers(1, 4))
def test_trailing_zeros_never_matter(case, zeros):
    currency, amount = case
    padded = format(amount, "f") + ("" if "." in format(amount, "f") else ".") + "0" * zeros
    assert parse_price(padded) == amount
    assert to_minor_units(parse_price(padded), currency) == to_minor_units(amount, currency)


# ----------------------------------------------------------------- too precise


@fast
@given(too_precise_amounts())
@example(("eur", Decimal("12.505")))
@example(("jpy", Decimal("10.5")))
@example(("jpy", Decimal("49.9")))
@example(("kwd", Decimal("1.2345")))
@example(("isk", Decimal("1.5")))
def test_one_decimal_more_than_allowed_is_an_error_unless_rounded_half_up(case):
    currency, amount = case
    with pytest.raises(AmountError):
        to_minor_units(amount, currency)
    with pytest.raises(AmountError):
        to_minor_units(parse_price(format(amount, "f")), currency)
    assert to_minor_units(amount, currency, round_half_up=True) == _half_up(amount, currency)


@fast
@given(
    st.sampled_from(sorted(CURRENCIES)),
    st.integers(0, MAX_AMOUNT),
    st.integers(1, 6),
    st.data(),
)
def test_rounding_is_half_up_in_one_step_never_twice(currency, whole, extra, data):
    decimals = CURRENCIES[currency][1] + extra
    fraction = data.draw(st.integers(1, 10**decimals - 1), label="fraction")
    amount = Decimal(whole) + Decimal(fraction).scaleb(-decimals)
    assume(amount != amount.quantize(Decimal(1).scaleb(-CURRENCIES[currency][1])))
    with pytest.raises(AmountError):
        to_minor_units(amount, currency)
    assert to_minor_units(amount, currency, round_half_up=True) == _half_up(amount, currency)


@pytest.mark.parametrize(
    ("amount", "currency", "rounded"),
    [
        ("12.505", "eur", 1251),
        ("12.504", "eur", 1250),
        ("12.5049999", "eur", 1250),  # not 12.505 -> 12.51: no double rounding
        ("0.005", "usd", 1),
        ("0.004", "usd", 0),
        ("10.5", "jpy", 11),
        ("49.5", "jpy", 50),
        ("1.2345", "kwd", 1235),
        ("1.5", "isk", 200),
        ("1.49", "isk", 100),
    ],
)
def test_half_up_rounding_examples(amount, currency, rounded):
    with pytest.raises(AmountError):
        to_minor_units(Decimal(amount), currency)
    assert to_minor_units(Decimal(amount), currency, round_half_up=True) == rounded


# ----------------------------------------------------------------- what parse_price refuses


@fast
@given(st.text(alphabet="0123456789., ", min_size=1, max_size=20).filter(lambda s: "," in s))
@example("12,50")
@example("1.234,56")
@example("1,234.56")
@example(",")
@example(" 1,5 ")
def test_a_comma_anywhere_is_ambiguous(text):
    assert _code(text) == "price_ambiguous"


@fast
@given(exact_amounts(), st.data())
def test_a_comma_put_into_any_plain_decimal_is_ambiguous(case, data):
    _, amount = case
    text = format(amount, "f")
    at = data.draw(st.integers(0, len(text)), label="at")
    assert _code(text[:at] + "," + text[at:]) == "price_ambiguous"


def _has_letter(text: str) -> bool:
    return any(unicodedata.category(ch).startswith("L") for ch in text)


@fast
@given(st.text(min_size=1, max_size=30).filter(_has_letter))
@example("abc")
@example("1e3")
@example("1E3")
@example("EUR 12.50")
@example("12.50 EUR")
@example("€12")
@example("12€")
@example("$5")
@example("NaN")
@example("nan")
@example("inf")
@example("Infinity")
@example("-Infinity")
@example("sNaN")
@example("0x10")
@example("true")
@example("twelve")
@example("-abc")
def test_text_with_a_letter_is_never_a_price(text):
    assert _code(text) in {"price_not_a_number", "price_ambiguous"}


@pytest.mark.parametrize("text", ["12.5.0", "1..2", "€12", "$5", "12 50", "+-1", "--1", "1-", "."])
def test_other_non_decimals_are_not_a_number(text):
    assert _code(text) == "price_not_a_number"


# An accepted string is ASCII digits with at most one point, maybe a sign, maybe spaces around.
_ACCEPTABLE = re.compile(r"\+?[0-9]*\.?[0-9]*", re.ASCII)


@fast
@given(st.text(max_size=25))
@example("١٢")  # Arabic-Indic digits: Decimal() takes them, a price must not
@example("１２.５０")  # fullwidth digits
@example("1_000")  # Decimal() takes underscores
@example("٣.٥")
def test_any_text_parse_price_accepts_is_a_plain_ascii_decimal_and_means_exactly_that(text):
    try:
        parsed = parse_price(text)
    except PriceError as error:
        assert error.code in PRICE_CODES
        return
    stripped = text.strip()
    assert _ACCEPTABLE.fullmatch(stripped) and re.search("[0-9]", stripped), (
        f"parse_price accepted {text!r} as {parsed!r}"
    )
    assert parsed == Decimal(stripped)


@fast
@given(st.text(alphabet=" ", max_size=10))
def test_nothing_or_only_spaces_is_missing(text):
    assert _code(text) == "price_missing"


def test_none_is_missing():
    assert _code(None) == "price_missing"


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        float("nan"),
        float("inf"),
        float("-inf"),
        Decimal("NaN"),
        Decimal("sNaN"),
        Decimal("Infinity"),
        Decimal("-Infinity"),
    ],
)
def test_booleans_nan_and_infinity_are_not_a_number(value):
    assert _code(value) == "price_not_a_number"


# ----------------------------------------------------------------- negatives


@fast
@given(st.decimals(max_value=Decimal("-0.001"), min_value=-MAX_AMOUNT, places=3))
@example(Decimal(-5))
@example(Decimal("-0.01"))
def test_negative_amounts_are_negative_in_every_form(amount):
    assert _code(amount) == "price_negative"
    assert _code(format(amount, "f")) == "price_negative"
    assert _code(f" {format(amount, 'f')} ") == "price_negative"
    assert _code(float(amount)) == "price_negative"
    if amount == amount.to_integral_value():
        assert _code(int(amount)) == "price_negative"


@fast
@given(st.integers(max_value=-1, min_value=-(10**12)))
def test_negative_integers_are_negative(value):
    assert _code(value) == "price_negative"
    assert _code(str(value)) == "price_negative"


# ----------------------------------------------------------------- numbers, never floats


@fast
@given(st.floats(min_value=0.0, max_value=1e12, allow_nan=False, allow_infinity=False))
@example(0.1)
@example(0.3)
@example(12.505)
@example(19.99)
@example(1e-7)
def test_a_float_means_its_shortest_repr_not_its_binary_value(value):
    assume(not (value == 0 and str(value).startswith("-")))
    parsed = parse_price(value)
    assert isinstance(parsed, Decimal)
    assert parsed == Decimal(repr(value))


def test_point_one_is_one_tenth_exactly():
    assert parse_price(0.1) == Decimal("0.1")
    assert parse_price(0.1) != Decimal(0.1)  # noqa: RUF032 - 0.1000000000000000055511151231257827...
    assert to_minor_units(parse_price(0.1), "eur") == 10
    assert to_minor_units(parse_price(19.99), "eur") == 1999
    assert to_minor_units(parse_price(1.005), "usd", round_half_up=True) == 101  # not 100


@fast
@given(st.integers(0, 10**15))
def test_integers_are_exact(value):
    assert parse_price(value) == Decimal(value)
    assert parse_price(str(value)) == Decimal(value)


@fast
@given(st.decimals(min_value=0, max_value=MAX_AMOUNT, places=9, allow_nan=False))
def test_decimals_pass_through_unchanged_whatever_their_precision(amount):
    assert parse_price(amount) == amount
    assert parse_price(format(amount, "f")) == amount


def test_long_decimal_strings_keep_every_digit():
    text = "123456789012345678.123456789"
    assert parse_price(text) == Decimal(text)
    assert str(parse_price("0.10")) in ("0.10", "0.1")
