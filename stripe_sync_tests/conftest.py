"""Fixtures shared by the test suite."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import dagster as dg
import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

# ---------------------------------------------------------------- PostgreSQL
# scripts/test exports the server it found or started; the default is the local one.
DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test PostgreSQL server's database (shared: create nothing fixed-named in it)."""
    return os.environ.get("STRIPE_SYNC_TEST_DATABASE_URL") or DEFAULT_TEST_DATABASE_URL


# ---------------------------------------------------------------- Redis
DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis (scripts/test exports the server it found or started)."""
    return os.environ.get("STRIPE_SYNC_TEST_REDIS_URL") or DEFAULT_TEST_REDIS_URL


@pytest.fixture(scope="session")
def fresh_database_url(postgres_url: str) -> Iterator[str]:
    """A new, empty database for this test session (one per xdist worker), dropped after.

    Its own database lets tests use `public.products`, as Supabase does, without
    colliding with other sessions on the same server.
    """
    with new_database(postgres_url, "stripe_sync_test") as url:
        yield url


@contextlib.contextmanager
def new_database(postgres_url: str, prefix: str) -> Iterator[str]:
    """A new, empty database named `prefix` and a random suffix, dropped after."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        # template0: nobody is ever connected to it, which CREATE DATABASE requires.
        admin.execute(sql.SQL("create database {} template template0").format(sql.Identifier(name)))
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(sql.SQL("drop database {} with (force)").format(sql.Identifier(name)))


# ---------------------------------------------------------------- pipeline fixtures
BATCH_ASSETS = ("supabase_products", "validated_products", "stripe_products", "stripe_prices")
# For the end-to-end tests (test_pipeline, test_kill, test_secrets, test_preflight): a
# catalog table in the session's PostgreSQL database, the Stripe emulator over HTTP, and
# an environment pointing the pipeline at both with a throwaway DAGSTER_HOME.

import pathlib
from dataclasses import dataclass, field
from decimal import Decimal

from psycopg.rows import dict_row

from stripe_sync.emulator import EmulatorConfig, EmulatorControl, run_emulator
from stripe_sync_tests.support.postgrest import (
    GatewayFaults,
    RecordedRequest,
    create_supabase_roles,
    grant_like_supabase,
    run_postgrest,
    service_role_key,
)

# Every variable the pipeline (or the CLI, which sets some itself) reads.
PIPELINE_ENV_VARS = (
    "CATALOG_DATABASE_URL",
    "CATALOG_TABLE",
    "SUPABASE_URL",
    "VITE_SUPABASE_URL",
    "SUPABASE_SERVICE_ROLE_KEY",
    "STRIPE_SECRET_KEY",
    "STRIPE_API_BASE",
    "STRIPE_ALLOW_LIVE_MODE",
    "STRIPE_SYNC_BATCH_SIZE",
    "STRIPE_SYNC_DEFAULT_CURRENCY",
    "STRIPE_SYNC_REPORTS_DIR",
    "STRIPE_SYNC_MIRROR",
    "STRIPE_SYNC_BACKUPS_DIR",
    "STRIPE_SYNC_AUTOMATION",
    "STRIPE_SYNC_RECONCILE_CRON",
    "STRIPE_SYNC_REMOVAL_SCAN_MINUTES",
    "STRIPE_SYNC_RETRY_BASE_MINUTES",
    "STRIPE_SYNC_RETRY_MAX_ATTEMPTS",
    "STRIPE_SYNC_STATE_DIR",
    "STRIPE_SYNC_THROTTLE_URL",
    "STRIPE_SYNC_THROTTLE_FRACTION",
    "STRIPE_SYNC_THROTTLE_GLOBAL_RATE",
    "STRIPE_SYNC_THROTTLE_ENDPOINT_RATE",
    "STRIPE_SYNC_MAX_IN_FLIGHT",
    "STRIPE_SYNC_METADATA_COLUMNS",
    "STRIPE_SYNC_CATALOG_QUERY",
    "STRIPE_SYNC_CATALOG_WHERE",
    "STRIPE_SYNC_CATALOG_COLUMNS",
    "STRIPE_SYNC_PRICE_UNIT",
    "STRIPE_SYNC_CATALOG_CURRENCY",
    "STRIPE_SYNC_CATALOG_ACTIVE",
    "STRIPE_SYNC_CATALOG_SKIP",
    "STRIPE_SYNC_CATALOG_DELETED",
    "STRIPE_SYNC_CATALOG_METADATA",
    "DAGSTER_HOME",
    "DAGSTER_PG_HOST",
    "DAGSTER_PG_PORT",
    "DAGSTER_PG_USERNAME",
    "DAGSTER_PG_PASSWORD",
    "DAGSTER_PG_DB",
)
TEST_SECRET_KEY = "sk_test_stripe_sync_pipeline_tests"
LIVE_SECRET_KEY = "sk_live_stripe_sync_pipeline_tests"
# Stripe's live-mode limits (STRIPE_FACTS.md): 100 requests/s in all, 25/s an endpoint.
LIVE_MODE_LIMITS = {"rate_limit": 100, "endpoint_rate_limit": 25}

_CATALOG_DDL = """
    create table {table} (
        id {id_type} primary key,
        name text,
        description text,
        price numeric,
        currency text,
        images text[],
        active boolean,
        updated_at timestamptz not null default now()
        {write_back}
    )
"""
_WRITE_BACK_DDL = """,
        stripe_product_id text,
        stripe_price_id text,
        sync_status text,
        sync_error text,
        synced_at timestamptz,
        sync_hash text
"""
_CMS_COLUMNS = ("id", "name", "description", "price", "currency", "images", "active")


@dataclass
class ProductsTable:
    """A uniquely named catalog table in the session's PostgreSQL database."""

    name: str
    database_url: str
    connection: psycopg.Connection

    def insert(self, rows: list[dict]) -> None:
        """Rows with any of id, name, description, price, currency, images, active."""
        statement = sql.SQL("insert into {} ({}) values ({})").format(
            sql.Identifier(self.name),
            sql.SQL(", ").join(map(sql.Identifier, _CMS_COLUMNS)),
            sql.SQL(", ").join(sql.Placeholder() * len(_CMS_COLUMNS)),
        )
        with self.connection.cursor() as cursor:
            cursor.executemany(statement, [tuple(row.get(c) for c in _CMS_COLUMNS) for row in rows])

    def update(self, id_: str, **columns: object) -> None:
        """Change some CMS columns of a row (as an editor would)."""
        self.connection.execute(
            sql.SQL("update {} set {}, updated_at = now() where id = %s").format(
                sql.Identifier(self.name),
                sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in columns),
            ),
            [*columns.values(), id_],
        )

    def delete(self, ids: list[str]) -> None:
        """Delete rows (as an editor would)."""
        self.connection.execute(
            sql.SQL("delete from {} where id::text = any(%s)").format(sql.Identifier(self.name)),
            [ids],
        )

    def rows(self) -> dict[str, dict]:
        """Every row, all columns, by id."""
        with self.connection.cursor(row_factory=dict_row) as cursor:
            cursor.execute(
                sql.SQL("select * from {} order by id").format(sql.Identifier(self.name))
            )
            return {row["id"]: row for row in cursor.fetchall()}


@pytest.fixture(scope="session")
def catalog_connection(fresh_database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(fresh_database_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def products_table(catalog_connection: psycopg.Connection, fresh_database_url: str):
    """Makes catalog tables: `make(rows=(), write_back=True, name=None, id_type="text") ->
    ProductsTable` (`name`, e.g. "products" for the Supabase look-alike, replaces a table of
    that name; `id_type`: the id column's SQL type, e.g. "uuid"); dropped after."""
    made: list[str] = []

    def make(
        rows: list[dict] = (),
        *,
        write_back: bool = True,
        name: str | None = None,
        id_type: str = "text",
    ):
        if name is None:
            name = f"products_{secrets.token_hex(4)}"
        else:
            catalog_connection.execute(
                sql.SQL("drop table if exists {} cascade").format(sql.Identifier(name))
            )
        catalog_connection.execute(
            sql.SQL(_CATALOG_DDL).format(
                table=sql.Identifier(name),
                id_type=sql.SQL(id_type),
                write_back=sql.SQL(_WRITE_BACK_DDL if write_back else ""),
            )
        )
        made.append(name)
        table = ProductsTable(name, fresh_database_url, catalog_connection)
        if rows:
            table.insert(list(rows))
        return table

    yield make
    for name in made:
        catalog_connection.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def emulator_url() -> Iterator[str]:
    """One Stripe emulator for the session, in a thread of the test process."""
    with run_emulator(EmulatorConfig()) as base_url:
        yield base_url


@pytest.fixture
def emulator(emulator_url: str) -> Iterator[EmulatorControl]:
    """The session's emulator, empty and with default knobs (and again after the test)."""
    control = EmulatorControl(emulator_url)
    defaults = EmulatorConfig().to_dict()
    control.configure(**defaults)
    control.reset()
    yield control
    control.configure(**defaults)
    control.reset()


@dataclass
class PipelineEnv:
    """Where a test's pipeline keeps its state, and helpers to run it in process."""

    monkeypatch: pytest.MonkeyPatch
    dagster_home: pathlib.Path
    reports_dir: pathlib.Path
    log_file: pathlib.Path
    emulator_url: str
    say_lines: list[str] = field(default_factory=list)

    def use_catalog(self, table: ProductsTable) -> None:
        self.monkeypatch.setenv("CATALOG_DATABASE_URL", table.database_url)
        self.monkeypatch.setenv("CATALOG_TABLE", table.name)

    def set(self, **variables: str) -> None:
        for name, value in variables.items():
            self.monkeypatch.setenv(name, value)

    def use_live_mode(self, emulator: EmulatorControl) -> None:
        """A live account at Stripe's live-mode limits, and the pipeline on a live key."""
        emulator.configure(livemode=True, **LIVE_MODE_LIMITS)
        self.set(STRIPE_SECRET_KEY=LIVE_SECRET_KEY, STRIPE_ALLOW_LIVE_MODE="true")

    def unset(self, *names: str) -> None:
        for name in names:
            self.monkeypatch.delenv(name, raising=False)

    def migrate(
        self, *, batches_per_run: int = 10, log_level: str = "INFO", progress=None, **options: bool
    ):
        """`run_migration` as the CLI runs it, on the environment as it is now (`options`:
        force_resync, no_checkpoint; `progress`: a `MigrationProgress` to tell)."""
        from stripe_sync.defs.loggers import LogOptions
        from stripe_sync.defs.run_options import RunOptions
        from stripe_sync.operations.migrate import migrate
        from stripe_sync.settings.loader import load_settings

        return migrate(
            load_settings(),
            RunOptions(**options),
            LogOptions(log_level=log_level, log_file=str(self.log_file)),
            batches_per_run=batches_per_run,
            say=self.say_lines.append,
            progress=progress,
        )

    def cli_env(self) -> dict[str, str]:
        """os.environ as it is now, for a `stripe-sync` subprocess."""
        return dict(os.environ)


def kill_when(command: list[str], env: dict, output, landed) -> subprocess.Popen:
    """Start `command` in a session of its own (its output in the file `output`) and
    SIGKILL it as soon as `landed()` holds; fails if it ends first or never gets there."""
    with open(output, "wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 120
            while not landed():
                assert process.poll() is None, pathlib.Path(output).read_text()
                assert time.monotonic() < deadline, "the command never got going"
                time.sleep(0.01)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    return process


def stripe_sync_script() -> str:
    """The `stripe-sync` console script of this interpreter's environment."""
    return console_script("stripe-sync")


def console_script(name: str) -> str:
    """A console script (`stripe-sync`, `dagster`, `dagster-daemon`) of this interpreter's
    environment."""
    import sys

    script = pathlib.Path(sys.executable).with_name(name)
    assert script.exists(), f"{script} is missing: pip install -e '.[dev]' in this environment"
    return str(script)


def free_port() -> int:
    """A loopback port nothing listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM a process started with `start_new_session=True` and its whole group (dagster
    dev's or the daemon's webserver, code servers and run workers), then SIGKILL what is left:
    none of it may outlive the test."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def process_table() -> dict[int, tuple[int, str]]:
    """Every process of the machine, as `ps` lists them: pid -> (parent pid, command line)."""
    listing = subprocess.run(
        ["ps", "-A", "-ww", "-o", "pid=", "-o", "ppid=", "-o", "args="],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    table = {}
    for line in listing.splitlines():
        pid, ppid, *args = line.split(None, 2)
        table[int(pid)] = (int(ppid), args[0] if args else "")
    return table


def descendants(pid: int) -> dict[int, str]:
    """The processes `pid` started, directly or through others: pid -> command line."""
    table = process_table()
    found: dict[int, str] = {}
    parents = [pid]
    while parents:
        parent = parents.pop()
        for child, (ppid, args) in table.items():
            if ppid == parent and child not in found:
                found[child] = args
                parents.append(child)
    return found


def kill_process_tree(process: subprocess.Popen) -> None:
    """SIGKILL a process that still runs and every process it started, whatever their group."""
    if process.poll() is None:
        for pid in [*descendants(process.pid), process.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    process.wait()


@pytest.fixture
def pipeline_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path, emulator_url: str
) -> PipelineEnv:
    """The pipeline pointed at the emulator, a throwaway DAGSTER_HOME and reports folder,
    and no catalog yet (`use_catalog(table)`); the working directory is tmp (no .env)."""
    for name in PIPELINE_ENV_VARS:
        # set, then delete: monkeypatch restores the variable even when the CLI under
        # test sets it itself (it sets DAGSTER_HOME, STRIPE_ALLOW_LIVE_MODE, the batch size).
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.chdir(tmp_path)
    env = PipelineEnv(
        monkeypatch, home, tmp_path / "reports", tmp_path / "logs" / "stripe-sync.log", emulator_url
    )
    env.set(
        DAGSTER_HOME=str(home),
        STRIPE_SYNC_REPORTS_DIR=str(env.reports_dir),
        STRIPE_SECRET_KEY=TEST_SECRET_KEY,
        STRIPE_API_BASE=emulator_url,
    )
    return env


# Minor-unit exponents, written out independently of stripe_sync.core.money.
MINOR_UNIT_EXPONENTS = {
    "eur": 2,
    "usd": 2,
    "gbp": 2,
    "chf": 2,
    "jpy": 0,
    "krw": 0,
    "bhd": 3,
    "kwd": 3,
}


def minor_units(price: Decimal | str, currency: str) -> int:
    """What Stripe's unit_amount must be for `price` (major units) in `currency`."""
    value = Decimal(str(price)).scaleb(MINOR_UNIT_EXPONENTS[currency])
    assert value == value.to_integral_value(), f"{price} {currency} is not exact in minor units"
    return int(value)


def stripe_state(
    base_url: str, secret_key: str | None = None
) -> tuple[list[dict], dict[str, dict]]:
    """Every product (a list: duplicates would show) and every price by id, read through
    stripe-python with auto-pagination (by default with a key of the emulator's mode)."""
    import stripe

    if secret_key is None:
        live = EmulatorControl(base_url).config()["livemode"]
        secret_key = LIVE_SECRET_KEY if live else TEST_SECRET_KEY

    client = stripe.StripeClient(secret_key, base_addresses={"api": base_url})
    products = [p.to_dict() for p in client.v1.products.list({"limit": 100}).auto_paging_iter()]
    prices = {p.id: p.to_dict() for p in client.v1.prices.list({"limit": 100}).auto_paging_iter()}
    return products, prices


# The verification checks, as the Dagster instance records them.
PRODUCTS_CHECK = dg.AssetCheckKey(dg.AssetKey("stripe_products"), "products_match_catalog")
PRICES_CHECK = dg.AssetCheckKey(dg.AssetKey("stripe_prices"), "default_prices_match_catalog")


def latest_results(check: dg.AssetCheckKey) -> dict[str, object]:
    """The latest evaluation of a check per batch, as the Dagster instance recorded it."""
    with dg.DagsterInstance.get() as instance:
        records = instance.event_log_storage.get_asset_check_execution_history(check, limit=1_000)
    latest = {}
    for record in records:  # newest first
        evaluation = record.event and record.event.dagster_event.event_specific_data
        if isinstance(evaluation, dg.AssetCheckEvaluation):
            latest.setdefault(record.partition, evaluation)
    return latest


def write_requests(log: list[dict]) -> list[dict]:
    """The Stripe write requests (POST, DELETE) of an emulator request log."""
    return [entry for entry in log if entry["method"] in ("POST", "DELETE")]


# ---------------------------------------------------------------- the state store


@pytest.fixture
def sqlite_state(tmp_path: pathlib.Path):
    """The pipeline's state store in a SQLite catalog file of 5 products without write-back
    columns, as `open_state` makes it."""
    from stripe_sync.backends import open_state
    from stripe_sync.backends.sql.catalog import SqlCatalog
    from stripe_sync_tests.support.tables import create_sqlite_products

    path = tmp_path / "catalog.db"
    create_sqlite_products(path, "text", 5, write_back=False)
    catalog = SqlCatalog(f"sqlite:///{path}")
    state = open_state(catalog)
    yield state
    state.close()
    catalog.close()


# ---------------------------------------------------------------- Supabase (the look-alike)
MIGRATIONS = pathlib.Path(__file__).parents[1] / "supabase/migrations"
WRITE_BACK_MIGRATION = MIGRATIONS / "20261126000000_stripe_sync.sql"
STATE_MIGRATION = MIGRATIONS / "20261203000000_stripe_sync_state.sql"


@pytest.fixture(scope="session")
def jwt_secret() -> str:
    return secrets.token_hex(32)


@pytest.fixture(scope="session")
def supabase_roles(catalog_connection: psycopg.Connection) -> None:
    create_supabase_roles(catalog_connection)


@pytest.fixture(scope="session")
def postgrest_log() -> list[RecordedRequest]:
    return []


@pytest.fixture(scope="session")
def postgrest_faults() -> GatewayFaults:
    return GatewayFaults()


@pytest.fixture(scope="session")
def supabase_url(
    fresh_database_url, jwt_secret, supabase_roles, postgrest_log, postgrest_faults
) -> Iterator[str]:
    """The look-alike's base URL: what SUPABASE_URL is for a real project."""
    with run_postgrest(fresh_database_url, jwt_secret, postgrest_log, postgrest_faults) as url:
        yield url


@pytest.fixture
def requests_made(postgrest_log) -> list[RecordedRequest]:
    """The requests the look-alike receives during the test."""
    postgrest_log.clear()
    return postgrest_log


@pytest.fixture
def apply_state_migration(catalog_connection: psycopg.Connection, supabase_roles) -> None:
    """The state tables and functions in the session's database, as on a Supabase project,
    holding nothing of `public.products` (the Supabase tests' table) from earlier tests."""
    catalog_connection.execute(STATE_MIGRATION.read_text())
    for table in (
        "stripe_sync_state",
        "stripe_sync_ledger",
        "stripe_sync_backups",
        "stripe_sync_frames",
    ):
        catalog_connection.execute(
            sql.SQL("delete from {} where namespace = 'products'").format(sql.Identifier(table))
        )


@pytest.fixture
def own_schema(request, catalog_connection, fresh_database_url, tmp_path):
    """`make(backend, schema) -> Cms`: an `OwnSchema`'s tables (uniquely named in PostgreSQL)
    with its first rows, in "postgres", "sqlite" or "supabase" (PostgreSQL behind the
    look-alike, granted as on Supabase, the state tables migrated); dropped after."""
    from stripe_sync_tests.support.own_schemas import Cms

    made: list = []

    def make(backend: str, schema):
        if backend == "sqlite":
            path = str(tmp_path / "cms.db")
            cms = Cms(schema, schema.name, database_url=f"sqlite:///{path}", sqlite_path=path)
            cms.execute(*schema.sqlite_ddl, *schema.rows)
            return cms
        cms = Cms(schema, f"{schema.name}_{secrets.token_hex(3)}", postgres=catalog_connection)
        cms.execute(*schema.postgres_ddl, *schema.rows)
        made.append(cms)
        if backend == "postgres":
            cms.database_url = fresh_database_url
            return cms
        request.getfixturevalue("apply_state_migration")
        for table in (*schema.tables, "{t}"):
            grant_like_supabase(catalog_connection, table.format(t=cms.name))
        key = service_role_key(request.getfixturevalue("jwt_secret"))
        cms.supabase = (request.getfixturevalue("supabase_url"), key)
        return cms

    yield make
    for cms in made:
        views = [] if "{t}" in cms.schema.tables else ["{t}"]  # dropped before their tables
        for kind, names in (("view", views), ("table", cms.schema.tables)):
            for name in names:
                catalog_connection.execute(
                    sql.SQL(f"drop {kind} if exists {{}} cascade").format(
                        sql.Identifier(name.format(t=cms.name))
                    )
                )


# ---------------------------------------------------------------- catalog outages


@pytest.fixture
def flaky_catalog(fresh_database_url: str):
    """A `FlakyProxy` in front of the session's database, and that database's URL through it:
    `(proxy, url)`."""
    yield from _behind_flaky_proxy(fresh_database_url, default_port=5432)


@pytest.fixture
def flaky_redis(redis_url: str):
    """A `FlakyProxy` in front of the test Redis, and its URL through it: `(proxy, url)`."""
    yield from _behind_flaky_proxy(redis_url, default_port=6379)


def _behind_flaky_proxy(url: str, *, default_port: int):
    from stripe_sync_tests.support.tcp_proxy import flaky_proxy

    direct = make_url(url)
    with flaky_proxy(direct.host or "127.0.0.1", direct.port or default_port) as proxy:
        through = direct.set(host="127.0.0.1", port=proxy.port)
        yield proxy, through.render_as_string(hide_password=False)
