"""Missing or wrong configuration stops `stripe-sync preflight` and `stripe-sync migrate`
before any write, with exit code 2 and one sentence on stderr saying what is wrong and
what to set, no traceback; a good configuration passes and says the mode and account."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from decimal import Decimal

import dagster as dg
import pytest
from click.testing import CliRunner
from psycopg import sql

from stripe_sync.cli import main
from stripe_sync_tests.conftest import (
    TEST_SECRET_KEY,
    free_port,
    stripe_sync_script,
    write_requests,
)

ROWS = [
    {"id": "1", "name": "Mug", "price": Decimal("12.50"), "currency": "eur"},
    {"id": "2", "name": "Tea", "price": Decimal(1500), "currency": "jpy"},
]


@dataclass(frozen=True)
class BadConfig:
    """How to break the configuration, and what the one sentence must name."""

    catalog: str = "table"  # "table", "none", "table without write-back", "unreachable host"
    stripe_key: str | None = TEST_SECRET_KEY
    emulator_keys: tuple[str, ...] | None = None  # keys the emulator accepts (None: any)
    batch_size: str | None = None
    says: tuple[str, ...] = ()
    prints: tuple[str, ...] = ()  # what stdout must show before the sentence


BAD_CONFIGS = {
    "no catalog configured": BadConfig(
        catalog="none", says=("No catalog configured", "CATALOG_DATABASE_URL")
    ),
    "STRIPE_SECRET_KEY missing": BadConfig(stripe_key=None, says=("STRIPE_SECRET_KEY is not set",)),
    "STRIPE_SECRET_KEY not a Stripe key": BadConfig(
        stripe_key="pk_test_publishable", says=("STRIPE_SECRET_KEY",)
    ),
    "a live key without --allow-live-mode": BadConfig(
        stripe_key="sk_live_stripe_sync_tests",
        says=(
            "live-mode",
            "--allow-live-mode",
            "stripe.allow_live_mode: true in stripe_sync.yaml",
            "STRIPE_ALLOW_LIVE_MODE=true",
        ),
    ),
    "a table with only some of the write-back columns": BadConfig(
        catalog="table with some write-back columns",
        says=("write-back columns synced_at, sync_hash", "all or none", "supabase/migrations/"),
    ),
    "an unreachable catalog host": BadConfig(
        catalog="unreachable host",
        says=("Cannot reach the catalog database", "CATALOG_DATABASE_URL"),
        prints=("Waiting up to 2 s for it.",),
    ),
    "Stripe rejecting the key": BadConfig(
        emulator_keys=("sk_test_the_only_key_the_account_has",),
        says=("Stripe rejected STRIPE_SECRET_KEY",),
    ),
    "a batch size that is not a number": BadConfig(
        batch_size="lots", says=("STRIPE_SYNC_BATCH_SIZE",)
    ),
}


def configure(config: BadConfig, products_table, pipeline_env, emulator):
    """Apply `config`; returns the catalog table (None when there is none)."""
    table = None
    if config.catalog in ("table", "table with some write-back columns"):
        table = products_table(ROWS)
        if config.catalog != "table":
            table.connection.execute(
                sql.SQL("alter table {} drop column synced_at, drop column sync_hash").format(
                    sql.Identifier(table.name)
                )
            )
        pipeline_env.use_catalog(table)
    elif config.catalog == "unreachable host":
        pipeline_env.set(
            CATALOG_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/catalog",
            # The default waits two minutes for a failover (test_catalog_outages shows it).
            STRIPE_SYNC_CATALOG_RETRY_DEADLINE_S="2",
        )
    if config.stripe_key is None:
        pipeline_env.unset("STRIPE_SECRET_KEY")
    else:
        pipeline_env.set(STRIPE_SECRET_KEY=config.stripe_key)
    if config.emulator_keys is not None:
        emulator.configure(api_keys=list(config.emulator_keys))
    if config.batch_size is not None:
        pipeline_env.set(STRIPE_SYNC_BATCH_SIZE=config.batch_size)
    return table


def assert_one_sentence(stderr: str, says: tuple[str, ...]) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    [line] = lines
    assert line.startswith("error: ") and "Traceback" not in line, line
    assert not re.search(r"[.!?]\s+[A-Z]", line.removeprefix("error: ")), (
        f"more than one sentence: {line}"
    )
    for words in says:
        assert words in line, line


def assert_nothing_written(table, pipeline_env, emulator) -> None:
    assert write_requests(emulator.requests()) == []
    if table is not None:
        for row in table.rows().values():
            assert all(
                row.get(c) is None
                for c in ("stripe_product_id", "stripe_price_id", "sync_status", "sync_hash")
            )
    with dg.DagsterInstance.get() as instance:
        assert instance.get_runs() == []
        assert instance.get_dynamic_partitions("product_batches") == []


@pytest.mark.parametrize("command", ["preflight", "migrate"])
@pytest.mark.parametrize("config", list(BAD_CONFIGS.values()), ids=list(BAD_CONFIGS))
def test_a_bad_configuration_stops_with_one_sentence_before_any_write(
    command, config, products_table, pipeline_env, emulator
):
    table = configure(config, products_table, pipeline_env, emulator)

    result = CliRunner().invoke(main, [command])

    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not an uncaught error
    assert_one_sentence(result.stderr, config.says)
    assert all(words in result.stdout for words in config.prints), result.stdout
    assert_nothing_written(table, pipeline_env, emulator)


def test_the_real_command_prints_only_the_sentence_on_stderr(
    products_table, pipeline_env, emulator
):
    table = configure(
        BAD_CONFIGS["a table with only some of the write-back columns"],
        products_table,
        pipeline_env,
        emulator,
    )

    result = subprocess.run(
        [stripe_sync_script(), "migrate"],
        env=pipeline_env.cli_env(),
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 2, result.stdout + result.stderr
    assert_one_sentence(result.stderr, ("write-back columns",))
    assert result.stdout == ""
    assert_nothing_written(table, pipeline_env, emulator)


def test_a_good_configuration_passes_and_says_the_mode_and_the_account(
    products_table, pipeline_env, emulator
):
    table = configure(BadConfig(), products_table, pipeline_env, emulator)

    result = CliRunner().invoke(main, ["preflight"])

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert (
        f"table {table.name} (2 rows, write-back columns present: filled with each row's sync "
        "state)" in result.stdout
    )
    assert re.search(r"^state: table stripe_sync_state in PostgreSQL ", result.stdout, re.MULTILINE)
    assert "mapping: none: each field in the column of its name (id, name, " in result.stdout
    assert re.search(
        r"^stripe: TEST mode at http://127\.0\.0\.1:\d+, account .+ \(acct_\w+\)$",
        result.stdout,
        re.MULTILINE,
    )
    assert result.stdout.strip().endswith("preflight: ok")
    assert_nothing_written(table, pipeline_env, emulator)


def test_a_live_key_is_accepted_with_allow_live_mode_and_the_run_says_live(
    products_table, pipeline_env, emulator
):
    configure(
        BadConfig(stripe_key="sk_live_stripe_sync_tests"), products_table, pipeline_env, emulator
    )
    emulator.configure(livemode=True)

    result = CliRunner().invoke(main, ["preflight", "--allow-live-mode"])

    assert result.exit_code == 0, result.output
    assert "stripe: LIVE mode" in result.stdout
