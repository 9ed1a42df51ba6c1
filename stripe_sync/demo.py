"""The demo's sample catalog: realistic products in SQLite, a few of them dirty."""

from __future__ import annotations

import json
import random
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

_ADJECTIVES = [
    "Merino",
    "Organic",
    "Recycled",
    "Classic",
    "Alpine",
    "Coastal",
    "Linen",
    "Canvas",
    "Cedar",
    "Heritage",
]
_ITEMS = ["Beanie", "Scarf", "Tote Bag", "Mug", "Notebook", "Candle", "Backpack", "Water Bottle", "Apron", "Blanket",
          "Hoodie", "Socks"]  # fmt: skip
# (currency, typical major-unit prices): EUR mostly, a zero-decimal one (JPY) and others.
_CURRENCIES = [(None, ["12.50", "19.90", "34.00", "7.95"]), ("usd", ["15.00", "24.99"]), ("gbp", ["11.50", "29.00"]),
               ("jpy", ["1500", "4800"]), ("chf", ["22.00"]), ("sek", ["149.00", "299.50"])]  # fmt: skip
# Rows the validation must stop, each for another reason.
_DIRTY_ROWS = [
    {"name": "   ", "price": "9.90"},
    {"name": "Broken price", "price": "abc"},
    {"name": "Negative price", "price": "-5.00"},
    {"name": "Unknown currency", "price": "10.00", "currency": "xyz"},
    {"name": "Too precise", "price": "9.999"},
]

_SCHEMA = """
create table if not exists products (
    id text primary key, name text, description text, price text, currency text, images text,
    active integer, updated_at text,
    stripe_product_id text, stripe_price_id text, sync_status text, sync_error text, synced_at text,
    sync_hash text
)
"""


def seed_sample_catalog(path: Path, products: int) -> str:
    """Create (or keep) the sample catalog at `path`; returns its SQLAlchemy URL."""
    connection = sqlite3.connect(path)
    with connection:
        connection.execute(_SCHEMA)
        if connection.execute("select count(*) from products").fetchone()[0] == 0:
            connection.executemany(
                "insert into products (id, name, description, price, currency, images, active, updated_at)"
                " values (:id, :name, :description, :price, :currency, :images, :active, :updated_at)",
                _sample_rows(products),
            )
    connection.close()
    return f"sqlite:///{path}"


def _sample_rows(count: int) -> list[dict]:
    rng = random.Random(42)
    now = datetime.now(UTC).isoformat()
    rows = []
    for n in range(1, count - len(_DIRTY_ROWS) + 1):
        currency, prices = rng.choice(_CURRENCIES)
        name = f"{rng.choice(_ADJECTIVES)} {rng.choice(_ITEMS)}"
        rows.append(
            {
                "id": f"sku-{n:05d}",
                "name": name,
                "description": f"{name}, made to last." if rng.random() < 0.7 else None,
                "price": rng.choice(prices),
                "currency": currency,
                "images": json.dumps([f"https://cdn.example.com/products/sku-{n:05d}.jpg"])
                if rng.random() < 0.6
                else None,
                "active": 0 if rng.random() < 0.05 else 1,
                "updated_at": now,
            }
        )
    for n, dirty in enumerate(_DIRTY_ROWS, start=1):
        rows.append(
            {
                "id": f"dirty-{n}",
                "description": None,
                "currency": None,
                "images": None,
                "active": 1,
                "updated_at": now,
                **dirty,
            }
        )
    return rows
