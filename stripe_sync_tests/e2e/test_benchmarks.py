"""The migration benchmark runs end to end at small sizes and prints its table (its figures
are for people; only the request counts, which don't depend on the machine, are checked)."""

from __future__ import annotations

import pathlib
import secrets
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

BENCHMARK = pathlib.Path(__file__).parents[2] / "benchmarks" / "migration.py"


@pytest.fixture
def bench_database(postgres_url: str) -> Iterator[str]:
    """A name for the benchmark's databases, dropped after the test."""
    name = f"bench_{secrets.token_hex(4)}"
    yield name
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        for database in (name, f"{name}_test", f"{name}_live", f"{name}_prices"):
            connection.execute(
                sql.SQL("drop database if exists {}").format(sql.Identifier(database))
            )


def test_the_benchmark_prints_every_scenario_with_one_request_per_new_product(
    postgres_url, bench_database
):
    run = subprocess.run(
        [
            sys.executable,
            str(BENCHMARK),
            *("--products", "40", "--scale-rows", "3000"),
            *("--command-products", "40", "--live-products", "60", "--command-latency-ms", "50"),
            *("--prices-products", "12"),
            *("--database-url", postgres_url, "--database-name", bench_database),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    table = run.stdout[run.stdout.index("| scenario | figure | value |") :]
    assert "| 1. initial, 40 new | sync requests per product | 1.00 |" in table
    # 10 batches of 4 products: the no-op's only request is the verification's one read
    assert "| 2. no-op resync | Stripe writes / reads | 0 / 1 (N/100 = 1) |" in table
    assert "| 4. 3,000 rows | batch registration |" in table and "(3 batches)" in table
    assert "| 4. 3,000 rows | runs to backfill every batch | 1 (10 batches a run) |" in table
    assert (
        "| 4. 3,000 rows | write-back and state of one 1,000-row batch | 3 statements in one "
        "transaction, " in table
    )
    # A product with 3 prices: one request for it and its default, one a further price.
    assert "| 8. 12 new with 3 prices each | sync requests per price | 1.00 |" in table
    assert '| 8. 12 new with 3 prices each | report: prices | {"created": 36,' in table
    # The whole command, as a new user runs it: where its time goes, and what it sent.
    assert "| 6. test mode, 40 new | time: stripe_products: WRITE WINDOW |" in table
    assert "| 6. test mode, 40 new | whole command |" in table
    assert "1.00 POST /v1/products |" in table
    assert (
        "| 6. test mode, no-op rerun of 40 | Stripe writes / reads (pre-flight's included) | 0 / 2 |"
        in table
    )
    assert (
        "| 7. live mode, 60 new | Stripe state | exact: 60 products, 60 prices (60 active) for "
        "60 catalog rows |" in table
    )
