"""A Stripe account that already holds the catalog: switching from the original tool, or from
products made by hand, never duplicates a product (default settings and topology: the state
in the catalog's database; every case on SQLite, PostgreSQL and the Supabase look-alike)."""

from __future__ import annotations

import random
import signal
import uuid
from collections import Counter

import pytest
import stripe
import yaml
from click.testing import CliRunner

from stripe_sync.cli import main
from stripe_sync_tests.conftest import (
    TEST_SECRET_KEY,
    WRITE_BACK_MIGRATION,
    kill_when,
    stripe_state,
    stripe_sync_script,
    write_requests,
)
from stripe_sync_tests.support.own_schemas import PLANS, OwnSchema

BACKENDS = ["sqlite", "postgres", "supabase"]
_WRITE_BACK_COLUMNS = (
    "stripe_product_id text, stripe_price_id text, sync_status text, sync_error text, "
    "synced_at {moment}, sync_hash text"
)

# The original tool's table: the project's own columns, uuid ids as text, and the write-back
# columns it filled (stripe_product_id, stripe_price_id, sync_status = 'synced').
ORIGINAL_TOOLS_TABLE = OwnSchema(
    name="original_tool",
    postgres_ddl=(
        "create table {t} (id text primary key, name text not null, description text, "
        "price numeric(10, 2) not null, currency text not null, images jsonb, "
        "active boolean not null default true, updated_at timestamptz not null default now(), "
        + _WRITE_BACK_COLUMNS.format(moment="timestamptz")
        + ")",
    ),
    sqlite_ddl=(
        "create table {t} (id text primary key, name text not null, description text, "
        "price numeric not null, currency text not null, images text, "
        "active boolean not null default true, "
        "updated_at text not null default CURRENT_TIMESTAMP, "
        + _WRITE_BACK_COLUMNS.format(moment="text")
        + ")",
    ),
    rows=(),
    tables=("{t}",),
    catalog={},
)

_PLANS_DDL = (
    "create table {t} (code text primary key, title text not null, "
    "price_cents integer not null, currency_code text not null)"
)
# Plans made by hand in the Dashboard: the CMS table has no write-back columns; each product
# carries the plan's code in its metadata (`code`), beside keys of the team's own.
HAND_MADE_PLANS = OwnSchema(
    name="hand_made",
    postgres_ddl=(_PLANS_DDL,),
    sqlite_ddl=(_PLANS_DDL,),
    rows=(
        (
            "insert into {t} (code, title, price_cents, currency_code) values "
            "('starter', 'Starter', 900, 'usd'), ('pro', 'Pro', 2900, 'usd'), "
            "('team', 'Team', 9900, 'usd'), ('seat', 'Extra seat', 500, 'usd'), "
            "('support', 'Support', 19900, 'usd'), ('legacy', 'Legacy', 400, 'usd'), "
            "('addon', 'Add-on', 700, 'usd'), ('bundle', 'Bundle', 12900, 'usd')"
        ),
    ),
    tables=("{t}",),
    catalog={
        "columns": {
            "id": "code",
            "name": "title",
            "price": "price_cents",
            "currency": "currency_code",
            "description": None,
            "images": None,
            "active": None,
            "updated_at": None,
        },
        "price_unit": "minor",
    },
)


@pytest.fixture
def client(emulator) -> stripe.StripeClient:
    return stripe.StripeClient(TEST_SECRET_KEY, base_addresses={"api": emulator.base_url})


def writes_by_route(emulator, mark: int) -> Counter:
    """The Stripe writes after the first `mark` requests, by route (an object's own path as
    `{id}`)."""
    return Counter(
        (entry["method"], _route(entry["path"]))
        for entry in write_requests(emulator.requests()[mark:])
    )


def _route(path: str) -> str:
    parts = path.split("/")
    return "/".join(parts[:3] + ["{id}"] * (len(parts) > 3))


def synced_by_the_original_tool(cms, client, rows: list[dict]) -> dict[str, stripe.Product]:
    """What the original tool did for each row: a product with a random id, its own metadata
    key `supabase_id`, one price, and the ids written back with sync_status 'synced'."""
    made = {}
    for row in rows:
        product = client.v1.products.create(
            {
                "name": row["name"],
                "metadata": {"supabase_id": row["id"]},
                "default_price_data": {"currency": "usd", "unit_amount": row["synced_cents"]},
            }
        )
        made[row["id"]] = product
        cms.execute(
            f"update {{t}} set stripe_product_id = '{product.id}', "
            f"stripe_price_id = '{product.default_price}', sync_status = 'synced' "
            f"where id = '{row['id']}'"
        )
    return made


def configure(tmp_path, **sections) -> None:
    """Add sections to the stripe_sync.yaml `schema_cms` wrote."""
    path = tmp_path / "stripe_sync.yaml"
    path.write_text(yaml.safe_dump(yaml.safe_load(path.read_text()) | sections))


@pytest.fixture
def original_tool(schema_cms, client):
    """`make(backend, count, repriced=0) -> (cms, rows, products)`: `count` uuid rows synced
    by the original tool (`products`: its product of each row, by id), the first `repriced`
    of them edited to a new price since."""

    def make(backend: str, count: int, repriced: int = 0):
        rng = random.Random(29)
        rows = [
            {
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "name": f"Product {n}",
                "synced_cents": 500 + n,
                "cents": 500 + n + (100 if n < repriced else 0),
            }
            for n in range(count)
        ]
        cms = schema_cms(backend, ORIGINAL_TOOLS_TABLE)
        if backend == "supabase":  # the project's migration (its write-back function)
            cms.postgres.execute(
                WRITE_BACK_MIGRATION.read_text()
                .replace("public.products", f"public.{cms.name}")
                .replace("products_sync_status", f"{cms.name}_sync_status")
            )
        cms.execute(
            *(
                f"insert into {{t}} (id, name, price, currency) values "
                f"('{row['id']}', '{row['name']}', {row['cents'] / 100:.2f}, 'usd')"
                for row in rows
            )
        )
        return cms, rows, synced_by_the_original_tool(cms, client, rows)

    return make


def written_back(cms) -> dict[str, tuple]:
    """(stripe_product_id, stripe_price_id, sync_status) of every row, by id."""
    return {row[0]: (row[8], row[9], row[10]) for row in cms.snapshot()[cms.name]}


@pytest.mark.parametrize("backend", BACKENDS)
def test_switching_from_the_original_tool_adopts_every_product_and_keeps_its_ids(
    backend, original_tool, pipeline_env, emulator, client
):
    cms, rows, original = original_tool(backend, 100, repriced=3)
    repriced = rows[:3]
    # The original tool also made the first repriced row's new amount, as a second price.
    ready = client.v1.prices.create(
        {
            "product": original[repriced[0]["id"]].id,
            "currency": "usd",
            "unit_amount": repriced[0]["cents"],
        }
    )
    mark = len(emulator.requests())

    result = pipeline_env.migrate()

    assert result.succeeded, result.report_markdown
    assert result.report["counts"]["adopted"] == 100
    assert result.report["counts"]["created"] == 0
    # One write a product; a repriced one: its price made (unless the product has it), made
    # the default, the old default archived.
    assert writes_by_route(emulator, mark) == {
        ("POST", "/v1/products/{id}"): 100 + 3,
        ("POST", "/v1/prices"): 2,
        ("POST", "/v1/prices/{id}"): 3,
    }
    sent = Counter(entry["method"] for entry in emulator.requests()[mark:])
    print(f"{backend}: {sent} for 100 rows, {sum(sent.values()) / 100:.2f} requests a product")
    products, prices = stripe_state(emulator.base_url)
    assert sorted(p["id"] for p in products) == sorted(p.id for p in original.values())
    ids = written_back(cms)
    for row in rows:
        product = original[row["id"]]
        now = next(p for p in products if p["id"] == product.id)
        assert now["metadata"]["supabase_id"] == row["id"]  # its own metadata kept
        assert (now["metadata"]["cms_id"], now["metadata"]["managed_by"]) == (
            row["id"],
            "stripe_sync",
        )
        live = [p for p in prices.values() if p["product"] == product.id and p["active"]]
        assert [(p["id"], p["unit_amount"]) for p in live] == [(now["default_price"], row["cents"])]
        assert ids[row["id"]] == (product.id, now["default_price"], "synced")
        if row in repriced:
            assert now["default_price"] != product.default_price
        else:
            assert now["default_price"] == product.default_price
    assert (
        next(p for p in products if p["id"] == original[rows[0]["id"]].id)["default_price"]
        == ready.id
    )

    mark = len(emulator.requests())
    rerun = pipeline_env.migrate()

    assert rerun.succeeded, rerun.report_markdown
    assert rerun.report["counts"]["unchanged"] == 100
    assert writes_by_route(emulator, mark) == {}


@pytest.mark.parametrize("backend", BACKENDS)
def test_products_made_by_hand_are_found_by_metadata_and_the_cms_is_left_untouched(
    backend, schema_cms, pipeline_env, emulator, client, tmp_path
):
    cms = schema_cms(backend, HAND_MADE_PLANS)
    configure(tmp_path, adopt={"metadata_key": "code"})
    by_hand = {
        code: client.v1.products.create(
            {
                "name": name,
                "metadata": {"code": code, "team": "growth"},
                "default_price_data": {"currency": "usd", "unit_amount": cents},
            }
        )
        for code, name, cents in [
            ("starter", "Starter", 900),
            ("pro", "Pro plan", 2900),  # renamed in the CMS since
            ("team", "Team", 9900),
            ("seat", "Seat", 500),
            ("support", "Support", 19900),
        ]
    }
    twins = [
        client.v1.products.create({"name": "Legacy", "metadata": {"code": "legacy"}})
        for _ in range(2)
    ]
    before = cms.snapshot()
    mark = len(emulator.requests())

    result = pipeline_env.migrate()

    assert result.succeeded, result.report_markdown  # a held row is named, and the rest go on
    counts = result.report["counts"]
    assert (counts["adopted"], counts["created"], counts["held"]) == (5, 2, 1)
    assert "adopt_ambiguous" in result.report_markdown
    assert all(twin.id in result.report_markdown for twin in twins)
    products, _ = stripe_state(emulator.base_url)
    for code, product in by_hand.items():
        now = next(p for p in products if p["id"] == product.id)
        assert now["metadata"]["team"] == "growth" and now["metadata"]["cms_id"] == code
    assert next(p for p in products if p["id"] == by_hand["pro"].id)["name"] == "Pro"
    assert all(
        "managed_by" not in p["metadata"] for p in products if p["id"] in {t.id for t in twins}
    )
    assert sorted(p["id"] for p in products if p["id"].startswith("cms_")) == [
        "cms_addon",
        "cms_bundle",
    ]
    assert writes_by_route(emulator, mark) == {
        ("POST", "/v1/products/{id}"): 5,
        ("POST", "/v1/products"): 2,
    }
    assert cms.snapshot() == before

    mark = len(emulator.requests())
    rerun = pipeline_env.migrate()

    assert writes_by_route(emulator, mark) == {}
    assert rerun.report["counts"]["held"] == 1
    assert cms.snapshot() == before


def test_plan_shows_each_adoption_and_a_stored_product_gone_from_stripe_is_created_and_said(
    original_tool, pipeline_env, emulator
):
    cms, rows, original = original_tool("postgres", 4, repriced=1)
    cms.execute(
        "insert into {t} (id, name, price, currency, stripe_product_id, sync_status) "
        "values ('gone', 'Gone', 3.00, 'usd', 'prod_gone', 'synced')"
    )
    mark = len(emulator.requests())

    planned = CliRunner().invoke(main, ["plan"])

    assert planned.exit_code == 0, planned.output
    assert "| create | adopt |" in planned.output and "| 1 | 4 |" in planned.output
    assert f"- **{rows[0]['id']}**: adopt" in planned.output
    assert f"{original[rows[0]['id']].id}: found by stripe_product_id" in planned.output
    assert "price: 5.00 USD -> 6.00 USD" in planned.output
    assert "stripe_product_id_gone: prod_gone" in planned.output
    assert writes_by_route(emulator, mark) == {}

    result = pipeline_env.migrate()

    assert result.succeeded, result.report_markdown
    assert (result.report["counts"]["adopted"], result.report["counts"]["created"]) == (4, 1)
    assert (
        "stripe_product_id_gone: prod_gone (the row's stripe_product_id) is not in Stripe; "
        "created as cms_gone" in result.report_markdown
    )
    assert written_back(cms)["gone"][0] == "cms_gone"


def test_rollback_of_an_adoption_restores_each_product_and_archives_none(
    original_tool, pipeline_env, emulator, client
):
    cms, rows, original = original_tool("postgres", 4, repriced=1)
    # The repriced row's new amount exists already: the adoption makes it the default.
    client.v1.prices.create(
        {"product": original[rows[0]["id"]].id, "currency": "usd", "unit_amount": rows[0]["cents"]}
    )
    products_before, prices_before = stripe_state(emulator.base_url)
    columns_before = written_back(cms)
    assert pipeline_env.migrate().succeeded
    assert restorable(stripe_state(emulator.base_url)[0]) != restorable(products_before)

    rolled_back = CliRunner().invoke(main, ["rollback", "--yes"])

    assert rolled_back.exit_code == 0, rolled_back.output
    products, prices = stripe_state(emulator.base_url)
    assert restorable(products) == restorable(products_before)  # all active, as before
    assert {pid: prices[pid]["active"] for pid in prices_before} == {
        pid: price["active"] for pid, price in prices_before.items()
    }
    assert not any(prices[pid]["active"] for pid in set(prices) - set(prices_before))
    assert written_back(cms) == columns_before


def restorable(products: list[dict]) -> dict[str, dict]:
    """Each product's fields that a sync or a rollback writes, by id."""
    fields = ("name", "description", "images", "metadata", "active", "default_price")
    return {product["id"]: {name: product[name] for name in fields} for product in products}


@pytest.mark.parametrize("kill_after", [20, 62, 70])
def test_an_adoption_killed_at_any_moment_converges_on_the_rerun_without_a_duplicate(
    kill_after, original_tool, pipeline_env, emulator, tmp_path
):
    cms, rows, original = original_tool("postgres", 60, repriced=6)
    emulator.configure(latency_ms=30, latency_jitter_ms=10, seed=kill_after)
    mark = len(emulator.requests())

    killed = kill_when(
        [stripe_sync_script(), "migrate"],
        pipeline_env.cli_env(),
        tmp_path / "killed.out",
        landed=lambda: len(write_requests(emulator.requests()[mark:])) >= kill_after,
    )

    assert killed.returncode == -signal.SIGKILL
    emulator.configure(latency_ms=0, latency_jitter_ms=0)
    rerun = pipeline_env.migrate()
    assert rerun.succeeded, rerun.report_markdown
    assert rerun.report["counts"]["failed"] == 0
    products, prices = stripe_state(emulator.base_url)
    assert sorted(p["id"] for p in products) == sorted(p.id for p in original.values())
    ids = written_back(cms)
    for row in rows:
        product = next(p for p in products if p["id"] == original[row["id"]].id)
        assert product["metadata"]["cms_id"] == row["id"]
        assert prices[product["default_price"]]["unit_amount"] == row["cents"]
        made = [p for p in prices.values() if p["product"] == product["id"]]
        amounts = Counter(p["unit_amount"] for p in made)
        assert max(amounts.values()) == 1, f"a price made twice for {row['id']}: {made}"
        assert ids[row["id"]] == (product["id"], product["default_price"], "synced")
    mark = len(emulator.requests())
    assert pipeline_env.migrate().succeeded
    assert writes_by_route(emulator, mark) == {}


def basic_plan_made_by_hand(client, name: str, *monthly_then_yearly: int) -> list:
    """The plan `basic` made in the Dashboard (metadata `slug`), its default 8.00 EUR a
    month, and a EUR price of its own for each amount given: monthly, then yearly."""
    basic = client.v1.products.create(
        {
            "name": name,
            "metadata": {"slug": "basic"},
            "default_price_data": {
                "currency": "eur",
                "unit_amount": 800,
                "recurring": {"interval": "month"},
            },
        }
    )
    return [basic] + [
        client.v1.prices.create(
            {
                "product": basic.id,
                "currency": "eur",
                "unit_amount": amount,
                "recurring": {"interval": interval},
            }
        )
        for amount, interval in zip(monthly_then_yearly, ["month", "year"], strict=False)
    ]


def test_with_a_prices_model_each_price_row_is_matched_among_the_adopted_products_prices(
    schema_cms, pipeline_env, emulator, client, tmp_path
):
    schema_cms("postgres", PLANS)
    configure(tmp_path, adopt={"metadata_key": "slug"})
    basic, monthly, yearly = basic_plan_made_by_hand(client, "Basic (old)", 900, 9000)

    result = pipeline_env.migrate()

    assert result.succeeded, result.report_markdown
    assert (result.report["counts"]["adopted"], result.report["counts"]["created"]) == (1, 1)
    products, prices = stripe_state(emulator.base_url)
    assert sorted(p["id"] for p in products) == sorted([basic.id, "cms_team"])
    adopted = next(p for p in products if p["id"] == basic.id)
    assert adopted["name"] == "Basic" and adopted["metadata"]["slug"] == "basic"
    assert adopted["default_price"] == monthly.id  # reused, never made again
    live = {p["id"]: p for p in prices.values() if p["product"] == basic.id and p["active"]}
    assert {(p["currency"], p["unit_amount"]) for p in live.values()} == {
        ("eur", 900),
        ("usd", 1000),
        ("eur", 9000),
        ("usd", 10000),
    }
    assert {monthly.id, yearly.id} <= set(live)
    assert live[monthly.id]["metadata"]["cms_price_id"] == "basic-m-eur"
    assert live[monthly.id]["nickname"] == "Monthly"
    assert not prices[basic.default_price]["active"]  # the old default archived

    mark = len(emulator.requests())
    assert pipeline_env.migrate().succeeded
    assert writes_by_route(emulator, mark) == {}

    rolled_back = CliRunner().invoke(main, ["rollback", "--yes"])

    assert rolled_back.exit_code == 0, rolled_back.output
    products, prices = stripe_state(emulator.base_url)
    restored = next(p for p in products if p["id"] == basic.id)
    assert (restored["name"], restored["default_price"]) == ("Basic (old)", basic.default_price)
    assert restored["metadata"] == {"slug": "basic"}
    mine = {p["id"]: p for p in prices.values() if p["product"] == basic.id}
    assert {pid for pid, p in mine.items() if p["active"]} == {
        basic.default_price,
        monthly.id,
        yearly.id,
    }
    assert all(
        mine[pid]["metadata"] == {} and mine[pid]["nickname"] is None
        for pid in (monthly.id, yearly.id)
    )


# A CMS that kept another tool's Stripe ids in columns of its own names, without the
# write-back columns: integer ids, the ids mapped as catalog.columns.stripe_*_id.
_LEGACY_DDL = (
    "create table {t} (item_id integer primary key, label text not null, amount numeric not null, "
    "curr text not null, legacy_product text)"
)
LEGACY_COLUMNS = OwnSchema(
    name="legacy_columns",
    postgres_ddl=(_LEGACY_DDL,),
    sqlite_ddl=(_LEGACY_DDL,),
    rows=(
        (
            "insert into {t} (item_id, label, amount, curr) values "
            "(1, 'Mug', 12.00, 'eur'), (2, 'Cup', 8.00, 'eur'), (3, 'Jug', 20.00, 'eur')"
        ),
    ),
    tables=("{t}",),
    catalog={
        "columns": {
            "id": "item_id",
            "name": "label",
            "price": "amount",
            "currency": "curr",
            "description": None,
            "images": None,
            "active": None,
            "updated_at": None,
            "stripe_product_id": "legacy_product",
        }
    },
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ids_another_tool_kept_in_columns_of_its_own_are_adopted_and_those_columns_untouched(
    backend, schema_cms, pipeline_env, emulator, client
):
    cms = schema_cms(backend, LEGACY_COLUMNS)
    legacy = {}
    for item_id, name, cents in [(1, "Mug", 1200), (2, "Cup", 800)]:
        product = client.v1.products.create(
            {"name": name, "default_price_data": {"currency": "eur", "unit_amount": cents}}
        )
        legacy[str(item_id)] = product
        cms.execute(f"update {{t}} set legacy_product = '{product.id}' where item_id = {item_id}")
    cms.execute("update {t} set legacy_product = 'prod_gone' where item_id = 3")  # deleted since
    before = cms.snapshot()
    mark = len(emulator.requests())

    result = pipeline_env.migrate()

    assert result.succeeded, result.report_markdown
    counts = result.report["counts"]
    assert (counts["adopted"], counts["created"]) == (2, 1)
    assert writes_by_route(emulator, mark) == {
        ("POST", "/v1/products/{id}"): 2,
        ("POST", "/v1/products"): 1,
    }
    products, _ = stripe_state(emulator.base_url)
    assert sorted(p["id"] for p in products) == sorted([*(p.id for p in legacy.values()), "cms_3"])
    assert all(p["metadata"]["managed_by"] == "stripe_sync" for p in products)
    assert "stripe_product_id_gone: prod_gone" in result.report_markdown
    assert cms.snapshot() == before

    # Again, then with no sync state: the column still names prod_gone; cms_3 is the row's.
    for reset in ([], ["reset", "--yes", "--catalog-columns"]):
        if reset:
            assert CliRunner().invoke(main, reset).exit_code == 0
        mark = len(emulator.requests())
        again = pipeline_env.migrate()
        assert again.succeeded and again.report["counts"]["unchanged"] == 3, again.report_markdown
        assert writes_by_route(emulator, mark) == {}


@pytest.mark.parametrize("catalog_columns", [False, True], ids=["checkpoints", "catalog-columns"])
def test_after_a_reset_adopted_products_are_found_again_never_duplicated(
    catalog_columns, original_tool, pipeline_env, emulator
):
    cms, _rows, original = original_tool("postgres", 5)
    assert pipeline_env.migrate().succeeded

    reset = CliRunner().invoke(main, ["reset", "--yes", *(["--catalog-columns"] * catalog_columns)])

    assert reset.exit_code == 0, reset.output
    if catalog_columns:
        assert "kept the Stripe ids of 5 adopted products" in reset.output
    assert {ids[:2] for ids in written_back(cms).values()} == {
        (p.id, p.default_price) for p in original.values()
    }  # an adopted product's ids are kept: nothing else would find it
    mark = len(emulator.requests())
    result = pipeline_env.migrate()
    assert result.succeeded, result.report_markdown
    assert result.report["counts"]["unchanged"] == 5
    assert writes_by_route(emulator, mark) == {}
    products, _ = stripe_state(emulator.base_url)
    assert sorted(p["id"] for p in products) == sorted(p.id for p in original.values())


def test_the_pipelines_own_product_beside_one_found_by_metadata_holds_the_row(
    schema_cms, pipeline_env, emulator, client, tmp_path
):
    schema_cms("postgres", HAND_MADE_PLANS)
    assert pipeline_env.migrate().succeeded  # cms_starter, ... made before the key was set
    configure(tmp_path, adopt={"metadata_key": "code"})
    twin = client.v1.products.create({"name": "Starter", "metadata": {"code": "starter"}})
    CliRunner().invoke(main, ["reset", "--yes", "--catalog-columns"])
    mark = len(emulator.requests())

    result = pipeline_env.migrate()

    assert result.report["counts"]["held"] == 1
    assert f"cms_starter (the pipeline's own) and {twin.id} both claim the row" in (
        result.report_markdown
    )
    # The other rows' creates find their products (Stripe refuses the id); nothing is made.
    assert not any(
        entry["path"].endswith(twin.id) for entry in write_requests(emulator.requests()[mark:])
    )
    products, _ = stripe_state(emulator.base_url)
    assert len(products) == 9 and "managed_by" not in client.v1.products.retrieve(twin.id).metadata


def test_a_prices_model_adoption_stopped_before_its_prices_step_reuses_them_on_the_rerun(
    schema_cms, pipeline_env, emulator, client, tmp_path, monkeypatch
):
    from stripe_sync.core.sync import BatchSync

    schema_cms("postgres", PLANS)
    configure(tmp_path, adopt={"metadata_key": "slug"})
    basic, monthly = basic_plan_made_by_hand(client, "Basic", 900)
    # The run dies after the products step: the adoption's update landed, no price was set.
    with monkeypatch.context() as patched:
        patched.setattr(BatchSync, "sync_prices", lambda *_: (_ for _ in ()).throw(SystemExit(1)))
        assert not pipeline_env.migrate().succeeded
    assert client.v1.products.retrieve(basic.id).metadata["managed_by"] == "stripe_sync"

    result = pipeline_env.migrate()

    assert result.succeeded, result.report_markdown
    products, prices = stripe_state(emulator.base_url)
    assert next(p for p in products if p["id"] == basic.id)["default_price"] == monthly.id
    live = [p for p in prices.values() if p["product"] == basic.id and p["active"]]
    assert sorted((p["currency"], p["unit_amount"]) for p in live) == [
        ("eur", 900),
        ("eur", 9000),
        ("usd", 1000),
        ("usd", 10000),
    ]  # each price once, the old default archived
