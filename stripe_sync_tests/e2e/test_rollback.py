"""`stripe-sync rollback` end to end: a PostgreSQL catalog and the Stripe emulator as they
were, backups written exactly as the assets write them, a migration made by hand, then the
command (the Dagster job `rollback`, in process) brings both back."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dagster as dg
import pytest
from click.testing import CliRunner
from psycopg import sql

from stripe_sync.backends import open_catalog, open_state
from stripe_sync.cli import main
from stripe_sync.core.backups import Backup
from stripe_sync.core.batches import batch_key
from stripe_sync.core.checkpoints import Checkpoint
from stripe_sync.core.contract import WRITE_BACK_COLUMNS, Catalog, WriteBack
from stripe_sync.core.state import StateStore
from stripe_sync.core.stripe_api import StripeApi
from stripe_sync.defs.partitions import batch_partitions
from stripe_sync_tests.conftest import (
    TEST_SECRET_KEY,
    ProductsTable,
    stripe_state,
    stripe_sync_script,
    write_requests,
)

BATCH = batch_key(0, "p00")
PRODUCT_FIELDS = ("name", "description", "images", "metadata", "active", "default_price")


@dataclass
class World:
    """The catalog, Stripe and the backups of one test, and a migration made by hand."""

    table: ProductsTable
    catalog: Catalog
    api: StripeApi
    state: StateStore  # the catalog's own database, as the pipeline uses it
    emulator_url: str
    price_ids: dict[str, str] = field(default_factory=dict)  # cms id -> its first price

    def sync_before(self, cms_id: str, **product: object) -> None:
        """A product synced before any migration: in Stripe, and written back."""
        params = {
            "id": f"cms_{cms_id}",
            "name": f"Product {cms_id}",
            "metadata": {"cms_id": cms_id, "managed_by": "stripe_sync", "sync_hash": "v1:old"},
            "default_price_data": {"currency": "eur", "unit_amount": 1250},
            **product,
        }
        self.table.insert([{"id": cms_id, "name": params["name"], "price": "12.50"}])
        made = self.api.create_product(params, f"test-create-{cms_id}")
        self.price_ids[cms_id] = made["default_price"]
        self.write_back(cms_id, sync_hash="v1:old", stripe_price_id=made["default_price"])

    def write_back(self, cms_id: str, **columns: object) -> None:
        row = self.table.rows()[cms_id]
        values = {
            "stripe_product_id": f"cms_{cms_id}",
            "sync_status": "synced",
            "sync_error": None,
            "synced_at": datetime.now(UTC),
            **{c: row[c] for c in ("stripe_price_id", "sync_hash")},
            **columns,
        }
        self.catalog.write_back([WriteBack(id=cms_id, **values)])

    def migrate(
        self,
        run_id: str,
        taken_at: str,
        changes: dict[str, Callable[[World, str], str]],
    ) -> None:
        """A run by hand: its backup first, exactly as the assets take it, then the changes."""
        rows = self.table.rows()
        product_ids = [f"cms_{cms_id}" for cms_id in changes]
        found = {p["id"]: p for p in self.api.list_products(product_ids)}
        self.state.save_backup(
            Backup(
                run_id=run_id,
                batch=BATCH,
                taken_at=taken_at,
                catalog_rows=[
                    {
                        "id": cms_id,
                        **{c: rows[cms_id][c] for c in WRITE_BACK_COLUMNS if c != "synced_at"},
                        "synced_at": _iso(rows[cms_id]["synced_at"]),
                    }
                    for cms_id in changes
                    if cms_id in rows and changes[cms_id] is not delete
                ],
                stripe_products={pid: found.get(pid) for pid in product_ids},
                actions={cms_id: change(self, cms_id) for cms_id, change in changes.items()},
            )
        )

    def stripe(self) -> tuple[dict[str, dict], dict[str, bool]]:
        """Every product's restorable fields by id, and every price's `active` by id."""
        products, prices = stripe_state(self.emulator_url)
        fields = {p["id"]: {name: p[name] for name in PRODUCT_FIELDS} for p in products}
        return fields, {price_id: price["active"] for price_id, price in prices.items()}

    def write_back_columns(self) -> dict[str, dict]:
        return {
            cms_id: {c: row[c] for c in WRITE_BACK_COLUMNS}
            for cms_id, row in self.table.rows().items()
        }

    def row_versions(self) -> dict[str, str]:
        """Each row's xmin: it changes with any write to the row."""
        query = sql.SQL("select id, xmin::text from {}").format(sql.Identifier(self.table.name))
        return dict(self.table.connection.execute(query).fetchall())


# --- the changes a migration makes (each returns its action label) ---------------------


def reprice(world: World, cms_id: str) -> str:
    product_id = f"cms_{cms_id}"
    old = world.api.retrieve_product(product_id)["default_price"]["id"]
    new = world.api.create_price(
        {
            "product": product_id,
            "currency": "eur",
            "unit_amount": 1990,
            "lookup_key": f"stripe_sync:{product_id}:eur:1990",
        },
        f"test-price-{cms_id}",
    )["id"]
    params = {"default_price": new, "metadata": {"sync_hash": "v1:new"}}
    world.api.update_product(product_id, params, f"test-default-{cms_id}")
    world.api.update_price(old, {"active": False}, f"test-archive-{cms_id}")
    world.write_back(cms_id, stripe_price_id=new, sync_hash="v1:new")
    return "new_price"


def rename_to(name: str) -> Callable[[World, str], str]:
    def rename(world: World, cms_id: str) -> str:
        params = {"name": name, "metadata": {"sync_hash": f"v1:{name}"}}
        world.api.update_product(f"cms_{cms_id}", params, f"test-rename-{cms_id}-{name}")
        world.write_back(cms_id, sync_hash=f"v1:{name}")
        return "update"

    return rename


def deactivate(world: World, cms_id: str) -> str:
    params = {"active": False, "metadata": {"sync_hash": "v1:new"}}
    world.api.update_product(f"cms_{cms_id}", params, f"test-deactivate-{cms_id}")
    world.write_back(cms_id, sync_hash="v1:new")
    return "update"


def restyle(world: World, cms_id: str) -> str:
    """Description removed, images replaced, a mapped metadata column added."""
    params = {
        "description": "",
        "images": ["https://img.example.com/new.png"],
        "metadata": {"sync_hash": "v1:new", "category": "shoes"},
    }
    world.api.update_product(f"cms_{cms_id}", params, f"test-restyle-{cms_id}")
    world.write_back(cms_id, sync_hash="v1:new")
    return "update"


def delete(world: World, cms_id: str) -> str:
    """Deleted from the catalog; mirror mode archives its product."""
    world.table.connection.execute(
        sql.SQL("delete from {} where id = %s").format(sql.Identifier(world.table.name)), [cms_id]
    )
    world.api.update_product(f"cms_{cms_id}", {"active": False}, f"test-delete-{cms_id}")
    return "archive"


def create(world: World, cms_id: str) -> str:
    made = world.api.create_product(
        {
            "id": f"cms_{cms_id}",
            "name": f"Product {cms_id}",
            "metadata": {"cms_id": cms_id, "managed_by": "stripe_sync", "sync_hash": "v1:new"},
            "default_price_data": {"currency": "eur", "unit_amount": 990},
        },
        f"test-create-{cms_id}",
    )
    world.price_ids[cms_id] = made["default_price"]
    world.write_back(cms_id, stripe_price_id=made["default_price"], sync_hash="v1:new")
    return "create"


# --- fixtures and helpers ----------------------------------------------------------------


@pytest.fixture
def world(products_table, pipeline_env, emulator, tmp_path) -> World:
    """Nine products synced before any migration (p00 .. p08), one row never synced (p09)."""
    table = products_table()
    pipeline_env.use_catalog(table)
    catalog = open_catalog(
        database_url=table.database_url, supabase_url=None, supabase_key=None, table=table.name
    )
    world = World(
        table,
        catalog,
        StripeApi(TEST_SECRET_KEY, api_base=pipeline_env.emulator_url),
        open_state(catalog),
        pipeline_env.emulator_url,
    )
    for n in range(9):
        extra = (
            {"description": "Soft leather.", "images": ["https://img.example.com/old.png"]}
            if n == 7
            else {}
        )
        world.sync_before(f"p{n:02d}", **extra)
    table.insert([{"id": "p09", "name": "Product p09", "price": "9.90"}])
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(batch_partitions.name, [BATCH])
    yield world
    catalog.close()


def the_whole_migration(world: World) -> None:
    world.migrate(
        "run-a",
        "2026-11-20T10:00:00.000000+00:00",
        {
            "p01": reprice,
            "p02": reprice,
            "p03": rename_to("Renamed"),
            "p04": rename_to("Renamed"),
            "p05": deactivate,
            "p06": delete,
            "p07": restyle,
            "p09": create,
        },
    )


def rollback(*args: str):
    return CliRunner().invoke(main, ["rollback", *args])


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


# --- tests ---------------------------------------------------------------------------------


def test_rollback_returns_stripe_and_the_catalog_columns_to_their_state_before_the_migration(
    world,
):
    products_before, prices_before = world.stripe()
    columns_before = world.write_back_columns()
    the_whole_migration(world)
    assert world.stripe()[0] != products_before

    result = rollback("--yes")

    assert result.exit_code == 0, result.output
    products, prices = world.stripe()
    assert products.pop("cms_p09")["active"] is False  # created by the migration: archived
    assert products == products_before
    assert {pid: prices[pid] for pid in prices_before} == prices_before
    # Of the prices the migration made, only the archived product's own stays active.
    assert {p for p in set(prices) - set(prices_before) if prices[p]} == {world.price_ids["p09"]}
    del columns_before["p06"]  # deleted from the catalog: its product is back, the row isn't
    assert world.write_back_columns() == columns_before
    assert "| 1 | 7 | 2 | 7 | 0 | 0 |" in result.output  # archived, restored, ..., failed
    with dg.DagsterInstance.get() as instance:
        [run] = instance.get_runs(filters=dg.RunsFilter(job_name="rollback"))
    assert run.status == dg.DagsterRunStatus.SUCCESS


def test_a_second_rollback_finds_nothing_to_do_and_writes_nothing(world, emulator):
    the_whole_migration(world)
    assert rollback("--yes").exit_code == 0
    versions = world.row_versions()
    before = len(emulator.requests())

    result = rollback("--yes")

    assert result.exit_code == 0, result.output
    assert "Nothing to roll back." in result.output
    assert write_requests(emulator.requests()[before:]) == []
    assert world.row_versions() == versions


def test_a_dry_run_prints_the_plan_and_writes_nothing(world, emulator):
    the_whole_migration(world)
    products, prices = world.stripe()
    versions = world.row_versions()
    before = len(emulator.requests())

    result = rollback("--dry-run")

    assert result.exit_code == 0, result.output
    assert "# Rollback plan (dry run: nothing written)" in result.output
    assert "| p03 | cms_p03 | restore name, metadata | planned |" in result.output
    assert "| p09 | cms_p09 | archive (created by the migration) | planned |" in result.output
    assert write_requests(emulator.requests()[before:]) == []
    assert world.stripe() == (products, prices)
    assert world.row_versions() == versions


def test_a_dry_run_on_a_table_without_write_back_columns_names_the_sync_state_not_the_catalog(
    products_table, pipeline_env
):
    table = products_table([{"id": "p1", "name": "Product p1", "price": "9.90"}], write_back=False)
    pipeline_env.use_catalog(table)
    assert pipeline_env.migrate().succeeded

    result = rollback("--dry-run")

    assert result.exit_code == 0, result.output
    assert "| p1 | sync state | restore stripe_product_id, " in result.output
    assert "| catalog |" not in result.output and "catalog rows" not in result.output


def test_the_checkpoints_of_rolled_back_rows_are_forgotten_and_a_dry_run_keeps_them(world):
    world.state.record(
        [],
        {
            BATCH: {
                c: Checkpoint(f"cms_{c}", world.price_ids[c], "v1:Renamed") for c in ("p03", "p08")
            }
        },
    )
    world.migrate("run-a", "2026-11-20T10:00:00.000000+00:00", {"p03": rename_to("Renamed")})

    assert rollback("--dry-run").exit_code == 0
    assert set(world.state.checkpoints(BATCH)) == {"p03", "p08"}

    assert rollback("--yes").exit_code == 0
    assert set(world.state.checkpoints(BATCH)) == {"p08"}  # p03 is reconciled by the next sync


@pytest.mark.parametrize("since", ["run-b", "2026-11-21T00:00:00", "2026-11-21T01:00:00+01:00"])
def test_since_rolls_back_that_run_and_later_ones_only(world, since):
    world.migrate("run-a", "2026-11-20T10:00:00.000000+00:00", {"p03": rename_to("After a")})
    products_after_a, columns_after_a = world.stripe()[0], world.write_back_columns()
    world.migrate(
        "run-b",
        "2026-11-21T10:00:00.000000+00:00",
        {"p03": rename_to("After b"), "p04": rename_to("After b")},
    )

    result = rollback("--yes", "--since", since)

    assert result.exit_code == 0, result.output
    assert world.stripe()[0] == products_after_a
    assert world.write_back_columns() == columns_after_a


def test_an_unknown_since_stops_with_one_sentence_and_exit_2_before_any_write(world, emulator):
    the_whole_migration(world)
    before = len(emulator.requests())

    result = rollback("--yes", "--since", "last tuesday")

    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        "error: --since 'last tuesday' is neither the id of a run with backups nor an ISO 8601 "
        "time."
    )
    assert write_requests(emulator.requests()[before:]) == []


def test_without_yes_and_without_a_terminal_to_ask_on_rollback_refuses_with_exit_2(world, emulator):
    the_whole_migration(world)
    before = len(emulator.requests())

    result = rollback()

    assert result.exit_code == 2
    assert "pass --yes to roll back, or --dry-run to see the plan" in result.output
    assert emulator.requests()[before:] == []


def test_a_step_that_fails_exits_1_and_everything_else_is_rolled_back(world, emulator):
    the_whole_migration(world)
    # A product of a backup that someone has since deleted from Stripe (it had no prices).
    ghost = {**world.api.retrieve_product("cms_p08"), "id": "cms_ghost"}
    world.table.insert([{"id": "ghost", "name": "Ghost", "price": "1"}])
    world.write_back("ghost", sync_hash="v1:new")
    world.state.save_backup(
        Backup(
            "run-c",
            BATCH,
            "2026-11-22T10:00:00.000000+00:00",
            [
                {
                    "id": "ghost",
                    "stripe_product_id": None,
                    "stripe_price_id": None,
                    "sync_status": None,
                    "sync_error": None,
                    "synced_at": None,
                    "sync_hash": None,
                }
            ],
            {"cms_ghost": ghost},
            {"ghost": "update"},
        )
    )

    result = rollback("--yes")

    assert result.exit_code == 1, result.output
    assert "| ghost | cms_ghost | not in Stripe: can't be restored | failed" in result.output
    assert (
        "| ghost | catalog | restore stripe_product_id, sync_status, synced_at, sync_hash "
        "| skipped: its product was not rolled back |"
    ) in result.output
    assert world.stripe()[0]["cms_p03"]["name"] == "Product p03"
    assert world.table.rows()["p03"]["sync_hash"] == "v1:old"
    assert world.table.rows()["ghost"]["sync_hash"] == "v1:new"  # left as it is
    with dg.DagsterInstance.get() as instance:
        [run] = instance.get_runs(filters=dg.RunsFilter(job_name="rollback"))
    assert run.status == dg.DagsterRunStatus.FAILURE


def test_on_a_terminal_it_shows_the_plan_and_writes_only_after_yes(world, emulator, pipeline_env):
    the_whole_migration(world)
    before = len(emulator.requests())

    declined = run_on_a_terminal(pipeline_env.cli_env(), answer="n")

    assert declined.returncode == 1
    assert "| p03 | cms_p03 | restore name, metadata | planned |" in declined.output
    assert "Apply 15 steps? [y/N]" in declined.output
    assert write_requests(emulator.requests()[before:]) == []

    accepted = run_on_a_terminal(pipeline_env.cli_env(), answer="y")

    assert accepted.returncode == 0, accepted.output
    assert world.stripe()[0]["cms_p03"]["name"] == "Product p03"


@dataclass
class TerminalRun:
    returncode: int
    output: str


def run_on_a_terminal(env: dict[str, str], answer: str, timeout_s: float = 120) -> TerminalRun:
    """`stripe-sync rollback` with a pseudo-terminal as stdin and stdout, answering the question."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [stripe_sync_script(), "rollback"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=env,
    )
    os.close(terminal)
    output, answered, deadline = b"", False, time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the process closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if not answered and b"[y/N]" in output:
                os.write(controller, answer.encode() + b"\n")
                answered = True
        elif process.poll() is not None:
            break
    os.close(controller)
    return TerminalRun(process.wait(timeout=30), output.decode(errors="replace"))
