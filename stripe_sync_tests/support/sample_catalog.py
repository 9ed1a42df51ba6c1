"""A sample catalog for the scenarios: valid products cycling through currencies and their
exact prices, and the check that Stripe and the catalog's write-back hold exactly them."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from stripe_sync_tests.conftest import minor_units

# (currency as stored, prices in major units) - each list cycles over the rows it gets.
# Every price is valid: at or above Stripe's minimum charge where the currency has one.
PRICE_PATTERNS = {
    "eur": ["12.50", "0.51", "19.99", "1000.00", "7"],
    "EUR": ["0.50", "99.90"],  # the catalog's spelling doesn't matter
    None: ["12.50", "3.30"],  # no currency: the default, eur
    "usd": ["0.50", "1234.56", "5.05"],
    "gbp": ["8.80", "250"],
    "jpy": ["1500", "50", "98000"],
    "bhd": ["1234.567", "1.234", "0.005", "10"],
    "kwd": ["0.250", "3.001"],
}


def sample_products(count: int) -> list[dict]:
    """`count` valid products cycling through the currencies and their exact prices."""
    currencies = list(PRICE_PATTERNS)
    rows = []
    for n in range(count):
        currency = currencies[n % len(currencies)]
        prices = PRICE_PATTERNS[currency]
        rows.append(
            {
                "id": f"sku-{n:05d}",
                "name": f"Product {n}",
                "description": None if n % 4 == 0 else f"The {n}th product of the catalog.",
                "price": Decimal(prices[(n // len(currencies)) % len(prices)]),
                "currency": currency,
                "images": None if n % 3 == 0 else [f"https://img.example.com/{n}.png"],
                "active": None if n % 5 == 0 else n % 7 != 0,
            }
        )
    return rows


def expected_currency(row: dict) -> str:
    return (row["currency"] or "eur").lower()


def assert_in_sync(
    table_rows: dict[str, dict], source: dict[str, dict], products: list[dict], prices: dict
) -> None:
    """Exactly one product per row, prices exact in minor units, write-back complete."""
    counts = Counter(p["id"] for p in products)
    assert [pid for pid, n in counts.items() if n > 1] == []
    assert set(counts) == {f"cms_{cms_id}" for cms_id in source}
    by_id = {p["id"]: p for p in products}
    for cms_id, row in source.items():
        product = by_id[f"cms_{cms_id}"]
        written = table_rows[cms_id]
        currency = expected_currency(row)
        price = prices[product["default_price"]]
        assert (price["currency"], price["unit_amount"]) == (
            currency,
            minor_units(row["price"], currency),
        ), cms_id
        assert price["product"] == product["id"] and price["active"]
        assert product["name"] == row["name"]
        assert product["metadata"]["cms_id"] == cms_id
        assert written["stripe_product_id"] == product["id"]
        assert written["stripe_price_id"] == product["default_price"]
        assert written["sync_status"] == "synced", (cms_id, written["sync_error"])
        assert written["sync_error"] is None
        assert written["sync_hash"] and written["synced_at"] is not None
