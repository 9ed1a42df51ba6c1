from decimal import Decimal

import pandas as pd
import pytest

from stripe_sync.core.schemas import ValidatedProducts
from stripe_sync.core.validation import ValidationRules, planning_inputs, validate_batch

COLUMNS = ["batch", "id", "name", "description", "price", "currency", "images", "active", "updated_at",
           "stripe_product_id", "stripe_price_id", "sync_status", "sync_error", "synced_at", "sync_hash"]  # fmt: skip
GOOD = {"name": "Hat", "price": "12.50"}


def validate(*rows: dict, rules: ValidationRules | None = None) -> pd.DataFrame:
    defaults = dict.fromkeys(COLUMNS)
    raw = pd.DataFrame(
        [{**defaults, "batch": "b", "id": str(n), **row} for n, row in enumerate(rows)],
        columns=None,
    ).astype(object)
    frame = validate_batch(raw, rules or ValidationRules())
    ValidatedProducts.validate(frame)
    return frame


def codes(frame: pd.DataFrame, column: str = "reasons") -> list[list[str]]:
    return [
        [entry.split(":", 1)[0] for entry in entries]
        for entry_list in [frame[column]]
        for entries in entry_list
    ]


@pytest.mark.parametrize(
    ("row", "code"),
    [
        ({"id": " ", **GOOD}, "id_missing"),
        ({"name": None, "price": "1"}, "name_missing"),
        ({"name": "\x00\x07 \t", "price": "1"}, "name_missing"),
        ({"name": "x" * 251, "price": "1"}, "name_too_long"),
        ({**GOOD, "description": "d" * 40_001}, "description_too_long"),
        ({"name": "Hat", "price": None}, "price_missing"),
        ({"name": "Hat", "price": "  "}, "price_missing"),
        ({"name": "Hat", "price": "12,50"}, "price_ambiguous"),
        ({"name": "Hat", "price": "1.234,56"}, "price_ambiguous"),
        ({"name": "Hat", "price": "1,234.56"}, "price_ambiguous"),
        ({"name": "Hat", "price": "EUR 12.50"}, "price_not_a_number"),
        ({"name": "Hat", "price": "12.5.0"}, "price_not_a_number"),
        ({"name": "Hat", "price": float("nan")}, "price_missing"),
        ({"name": "Hat", "price": "NaN"}, "price_not_a_number"),
        ({"name": "Hat", "price": float("inf")}, "price_not_a_number"),
        ({"name": "Hat", "price": True}, "price_not_a_number"),
        ({"name": "Hat", "price": "-5.00"}, "price_negative"),
        ({"name": "Hat", "price": Decimal(-1)}, "price_negative"),
        ({"name": "Hat", "price": "12.505"}, "price_too_precise"),
        ({"name": "Hat", "price": "10.5", "currency": "JPY"}, "price_too_precise"),
        ({"name": "Hat", "price": "12.5", "currency": "isk"}, "price_too_precise"),
        ({"name": "Hat", "price": "1", "currency": "euro"}, "currency_unsupported"),
        ({"name": "Hat", "price": "0.30"}, "price_below_minimum"),
        ({"name": "Hat", "price": "40", "currency": "jpy"}, "price_below_minimum"),
        ({"name": "Hat", "price": "1000000.01"}, "price_above_maximum"),
        ({"name": "Hat", "price": "0"}, "price_free_not_allowed"),
    ],
)
def test_each_rule_quarantines_a_row_with_its_own_reason_code(row, code):
    [found] = codes(validate(row))
    assert found == [code]


def test_a_row_breaking_several_rules_lists_every_reason():
    [found] = codes(validate({"name": "", "price": "12,50", "currency": "xyz"}))
    assert found == ["name_missing", "currency_unsupported", "price_ambiguous"]


def test_rows_sharing_an_id_are_all_quarantined_and_the_rest_go_on():
    frame = validate({**GOOD, "id": "a"}, {**GOOD, "id": "a"}, {**GOOD, "id": "b"})
    assert codes(frame) == [["id_duplicate"], ["id_duplicate"], []]


def test_names_and_descriptions_are_normalised_cleaned_and_trimmed():
    frame = validate(
        {"name": "  Cafe\u0301\x00 \u202e", "description": " line 1\nline\t2\x07 ", "price": "1"}
    )
    assert (
        frame.loc[0, "name"] == "Café \u202e".strip()
        and frame.loc[0, "description"] == "line 1\nline\t2"
    )


def test_hostile_but_valid_strings_pass_verbatim():
    names = ["Robert'); DROP TABLE products;--", "<script>alert(1)</script>", "🎩 Hat", "كوب قهوة"]
    frame = validate(*({"name": name, "price": "1"} for name in names))
    assert list(frame["name"]) == names and codes(frame) == [[], [], [], []]


def test_bad_images_are_dropped_with_a_warning_and_at_most_eight_kept():
    images = [
        "http://plain",
        "https://ok/1",
        "/relative",
        "https://" + "x" * 2050,
        *(f"https://ok/{n}" for n in range(2, 10)),
    ]
    frame = validate({**GOOD, "images": images})
    assert frame.loc[0, "images"] == tuple(f"https://ok/{n}" for n in range(1, 9))
    assert codes(frame, "warnings") == [["image_dropped"] * 3 + ["images_truncated"]]
    assert codes(frame) == [[]]


@pytest.mark.parametrize("images", ['["https://a/x.png"]', ["https://a/x.png"], "https://a/x.png"])
def test_images_may_be_an_array_a_json_array_or_one_url(images):
    assert validate({**GOOD, "images": images}).loc[0, "images"] == ("https://a/x.png",)


def test_a_missing_currency_means_the_default_and_case_does_not_matter():
    frame = validate(
        {**GOOD, "currency": None},
        {**GOOD, "currency": " EUR "},
        rules=ValidationRules(default_currency="usd"),
    )
    assert list(frame["currency"]) == ["usd", "eur"]


def test_rounding_rounds_half_up_with_a_warning():
    frame = validate({**GOOD, "price": "12.505"}, rules=ValidationRules(round_prices=True))
    assert frame.loc[0, "unit_amount"] == 1251
    assert frame.loc[0, "warnings"] == ("price_rounded: 12.505 EUR rounded to 12.51",)


def test_free_products_may_be_allowed():
    frame = validate({**GOOD, "price": "0"}, rules=ValidationRules(allow_free_products=True))
    assert (codes(frame), frame.loc[0, "unit_amount"]) == ([[]], 0)


def test_skipping_validation_skips_business_rules_only():
    rules = ValidationRules(skip_validation=True)
    frame = validate(
        {**GOOD, "price": "0.30"},
        {**GOOD, "price": "2000000"},
        {**GOOD, "price": "0"},
        {**GOOD, "price": "abc"},
        rules=rules,
    )
    assert codes(frame) == [[], [], [], ["price_not_a_number"]]


def test_mapped_metadata_columns_become_metadata_within_stripes_limits():
    frame = validate(
        {**GOOD, "metadata.sku": "A-1", "metadata.color": None},
        {**GOOD, "metadata.sku": "x" * 501},
    )
    assert frame.loc[0, "metadata"] == (("sku", "A-1"),)
    assert codes(frame) == [[], ["metadata_invalid"]]
    [(_, desired, _, _), _] = planning_inputs(frame)
    assert desired.managed_metadata() == {"sku": "A-1", "cms_id": "0", "managed_by": "stripe_sync"}


def test_a_valid_row_becomes_a_stripe_ready_product():
    [(cms_id, desired, reasons, _)] = planning_inputs(
        validate({**GOOD, "images": '["https://a/x.png"]'})
    )
    assert (
        cms_id,
        reasons,
        desired.name,
        desired.currency,
        desired.unit_amount,
        desired.active,
    ) == ("0", (), "Hat", "eur", 1250, True)


@pytest.mark.parametrize(
    ("price", "currency", "unit_amount", "reasons"),
    [
        ("1250", "eur", 1250, []),
        (1250, "EUR", 1250, []),
        ("1250.00", "eur", 1250, []),  # NUMERIC(10, 2) as text: still a whole number of cents
        ("1500", "jpy", 1500, []),  # yen have no minor unit
        ("2500", "kwd", 2500, []),  # 2.500 dinars: fils are thousandths
        ("12.5", "eur", None, ["price_not_a_number"]),  # never rounded
        ("1250", "isk", None, ["price_too_precise"]),  # 12.50 krónur: whole krónur only
        ("30", "eur", 30, ["price_below_minimum"]),  # 0.30 EUR: under Stripe's minimum charge
    ],
)
def test_prices_in_minor_units_are_whole_numbers_of_the_currencys_minor_unit(
    price, currency, unit_amount, reasons
):
    frame = validate(
        {"name": "Hat", "price": price, "currency": currency},
        rules=ValidationRules(price_unit="minor"),
    )

    assert codes(frame) == [reasons]
    assert frame["unit_amount"][0] == unit_amount


# --- price rows of a prices model -------------------------------------------------------


def price_row(key: str, amount: object = "1250", **fields: object) -> dict:
    return {"id": key, "product_id": "0", "amount": amount, "currency": "eur", **fields}


def validate_prices(*prices: dict, unit: str = "minor") -> dict:
    [row] = records_of(
        validate({"name": "Plan", "prices": list(prices)}, rules=ValidationRules(prices_unit=unit))
    )
    return row


def records_of(frame: pd.DataFrame) -> list[dict]:
    return frame.to_dict("records")


@pytest.mark.parametrize(
    ("price", "code"),
    [
        (price_row(" "), "price_id_missing"),
        (price_row("a", "12.5"), "price_not_a_number"),
        (price_row("a", "12,50"), "price_ambiguous"),
        (price_row("a", None), "price_missing"),
        (price_row("a", currency="euro"), "currency_unsupported"),
        (price_row("a", "30"), "price_below_minimum"),
        (price_row("a", interval="fortnight"), "price_interval_invalid"),
        (price_row("a", interval="month", interval_count=37), "price_interval_count_invalid"),
        (price_row("a", interval="week", interval_count="1.5"), "price_interval_count_invalid"),
        (price_row("a", interval="year", interval_count=0), "price_interval_count_invalid"),
        (price_row("a", interval="year", interval_count="sNaN"), "price_interval_count_invalid"),
        (price_row("a", interval="day", interval_count="inf"), "price_interval_count_invalid"),
        (price_row("a", interval_count=2), "price_interval_count_invalid"),
    ],
)
def test_a_bad_price_row_is_quarantined_with_its_reason_and_the_product_keeps_its_others(
    price, code
):
    row = validate_prices(price, price_row("ok"))

    assert row["reasons"] == ()
    assert [reason.split(": ")[1] for reason in row["price_reasons"]] == [code]
    assert row["held_prices"] == (price["id"],)
    assert [price.key for price in row["prices"]] == ["ok"]


def test_a_product_without_a_valid_active_price_is_invalid():
    row = validate_prices(price_row("off", active=False), price_row("bad", "x"))

    assert [reason.split(":")[0] for reason in row["reasons"]] == ["prices_missing"]


def test_recurring_prices_take_interval_and_count_and_the_flagged_default_comes_first():
    row = validate_prices(
        price_row("m", "900", interval="Month", nickname="Monthly"),
        price_row("q", "2500", interval="month", interval_count="3", default=True),
        price_row("y", "9000", interval="year", interval_count=None, default="false"),
        price_row("old", "800", interval="month", active="false"),
    )

    assert [price.describe() for price in row["prices"]] == [
        "q: 25.00 EUR every 3 month",
        "m: 9.00 EUR every 1 month 'Monthly'",
        "y: 90.00 EUR every 1 year",
    ]
    assert (row["currency"], row["unit_amount"]) == ("eur", 2500)  # the default's


def test_without_a_default_flag_the_first_price_by_id_is_the_default():
    row = validate_prices(price_row("a", "1500"), price_row("b", "1750"))

    assert [price.key for price in row["prices"]] == ["a", "b"]


def test_price_amounts_in_major_units_follow_the_prices_unit():
    row = validate_prices(price_row("a", "12.50"), unit="major")

    assert row["prices"][0].unit_amount == 1250
