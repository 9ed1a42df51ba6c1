from decimal import Decimal

import pytest

from stripe_sync.core.money import AmountError, minor_unit_exponent, to_minor_units


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("12.50", "eur", 1250),
        ("0.10", "usd", 10),
        ("1500", "jpy", 1500),
        ("1.234", "bhd", 1234),
        ("12", "isk", 1200),
    ],
)
def test_amounts_convert_exactly_to_the_currencys_minor_unit(amount, currency, minor):
    assert to_minor_units(Decimal(amount), currency) == minor


@pytest.mark.parametrize(
    ("amount", "currency"), [("12.505", "eur"), ("1.5", "jpy"), ("1.2345", "kwd"), ("1.5", "isk")]
)
def test_more_decimals_than_the_currency_allows_is_an_error(amount, currency):
    with pytest.raises(AmountError):
        to_minor_units(Decimal(amount), currency)


def test_exponents_follow_stripes_currency_table():
    assert [minor_unit_exponent(c) for c in ("eur", "jpy", "bhd", "krw", "tnd")] == [2, 0, 3, 0, 3]
