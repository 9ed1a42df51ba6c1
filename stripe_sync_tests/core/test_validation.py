import pandas as pd

from stripe_sync.core.schemas import ValidatedProducts
from stripe_sync.core.validation import ValidationRules, planning_inputs, validate_batch

COLUMNS = ["batch", "id", "name", "description", "price", "currency", "images", "active", "updated_at",
           "stripe_product_id", "stripe_price_id", "sync_status", "sync_error", "synced_at", "sync_hash"]  # fmt: skip


def raw(*rows: dict) -> pd.DataFrame:
    defaults = {column: None for column in COLUMNS}
    return pd.DataFrame(
        [{**defaults, "batch": "b", **row} for row in rows], columns=COLUMNS
    ).astype(object)


def reasons_of(frame: pd.DataFrame) -> dict[str, tuple]:
    return dict(zip(frame["cms_id"], frame["reasons"], strict=True))


def test_a_clean_row_becomes_a_stripe_ready_product():
    frame = validate_batch(
        raw(
            {"id": 1, "name": " Hat ", "price": "12.50", "images": '["https://a/x.png", "ftp://b"]'}
        ),
        ValidationRules(),
    )
    ValidatedProducts.validate(frame)
    [(cms_id, desired, reasons, _)] = planning_inputs(frame)
    assert (cms_id, reasons) == ("1", ())
    assert (
        desired.name,
        desired.currency,
        desired.unit_amount,
        desired.images,
        desired.active,
    ) == ("Hat", "eur", 1250, ("https://a/x.png",), True)


def test_bad_rows_are_quarantined_with_reasons_and_the_rest_goes_on():
    frame = validate_batch(
        raw(
            {"id": "ok", "name": "Hat", "price": 5},
            {"id": "no-name", "name": "  ", "price": "1"},
            {"id": "bad-price", "name": "X", "price": "12,50"},
            {"id": "bad-currency", "name": "X", "price": "1", "currency": "xyz"},
            {"id": "too-precise", "name": "X", "price": "1.5", "currency": "JPY"},
        ),
        ValidationRules(),
    )
    ValidatedProducts.validate(frame)
    reasons = reasons_of(frame)
    assert reasons["ok"] == ()
    assert reasons["no-name"][0].startswith("name_missing")
    assert reasons["bad-price"][0].startswith("price_unparseable")
    assert reasons["bad-currency"][0].startswith("currency_unsupported")
    assert reasons["too-precise"][0].startswith("price_precision")


def test_a_missing_currency_means_the_configured_default():
    frame = validate_batch(
        raw({"id": 1, "name": "Hat", "price": "500"}), ValidationRules(default_currency="jpy")
    )
    assert (frame.loc[0, "currency"], frame.loc[0, "unit_amount"]) == ("jpy", 500)
