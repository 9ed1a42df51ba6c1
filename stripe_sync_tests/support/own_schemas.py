"""Catalog schemas that are not this project's own, as real CMSs shape them, each with its
mapping and a few edits over time: the cases of test_own_schemas.

Every statement is plain SQL that PostgreSQL and SQLite both run (`{t}` is the catalog's
name, unique per test), so one schema serves the direct SQL catalogs and Supabase alike.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass, field

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class Product:
    """What a Stripe product must be: its default price in minor units, its metadata (the
    mapped keys only)."""

    name: str
    currency: str
    unit_amount: int
    active: bool = True
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """Edits an editor makes in the CMS, then what Stripe must hold after the next sync (by
    Stripe product id; products of rows removed since are archived)."""

    edits: tuple[str, ...]
    products: dict[str, Product]
    archived: tuple[str, ...] = ()


@dataclass(frozen=True)
class OwnSchema:
    name: str
    postgres_ddl: tuple[str, ...]
    sqlite_ddl: tuple[str, ...]
    rows: tuple[str, ...]  # the first INSERTs
    tables: tuple[str, ...]  # the CMS's own tables (and the view), for "left untouched"
    catalog: dict  # the `catalog:` section of stripe_sync.yaml, `{t}` for the name
    where_sql: str | None = None
    where_postgrest: str | None = None
    steps: tuple[Step, ...] = ()
    query: str | None = None  # SQL catalogs may read this query instead of the view
    prices: dict | None = None  # the `prices:` section, `{t}` in its table for the name

    def settings(self, name: str, *, supabase: bool, use_query: bool = False) -> dict:
        catalog = {"table": name, **self.catalog}
        where = self.where_postgrest if supabase else self.where_sql
        if where:
            catalog["where"] = where
        if use_query:
            catalog["query"] = self.query.format(t=name)
        if self.prices is None:
            return {"catalog": catalog}
        return {
            "catalog": catalog,
            "prices": {**self.prices, "table": self.prices["table"].format(t=name)},
        }


# An e-commerce export: SKUs, prices in cents, a status column, a `kind` that is not all
# of it part of the catalog, images as a JSON array.
SHOP_EXPORT = OwnSchema(
    name="shop_export",
    postgres_ddl=(
        """create table {t} (
            sku text primary key, title text not null, body text, price_cents integer not null,
            currency_code char(3) not null, image_urls jsonb, status text not null,
            kind text not null, modified_at timestamptz not null default now())""",
    ),
    sqlite_ddl=(
        """create table {t} (
            sku text primary key, title text not null, body text, price_cents integer not null,
            currency_code text not null, image_urls text, status text not null,
            kind text not null, modified_at text not null default CURRENT_TIMESTAMP)""",
    ),
    rows=(
        """insert into {t} (sku, title, body, price_cents, currency_code, image_urls, status,
            kind) values
            ('A-100', 'Wool hat', 'Warm.', 1250, 'EUR', '["https://img.example.com/a100.png"]',
             'active', 'physical'),
            ('A-101', 'Canvas tote', NULL, 990, 'USD', NULL, 'active', 'physical'),
            ('A-102', 'Gift card', NULL, 2500, 'EUR', NULL, 'active', 'digital'),
            ('A-103', 'Rain jacket', NULL, 8900, 'EUR', NULL, 'draft', 'physical'),
            ('A-104', 'Old scarf', NULL, 1500, 'EUR', NULL, 'archived', 'physical'),
            ('A-105', 'Sock pack', NULL, 450, 'GBP', NULL, 'active', 'physical')""",
    ),
    tables=("{t}",),
    catalog={
        "columns": {
            "id": "sku",
            "name": "title",
            "description": "body",
            "price": "price_cents",
            "currency": "currency_code",
            "images": "image_urls",
            "updated_at": "modified_at",
        },
        "price_unit": "minor",
        "active": {"column": "status", "values": ["active"]},
        "skip": {"column": "status", "values": ["draft"]},
        "metadata": {"sku": "sku"},
    },
    where_sql="kind = 'physical'",
    where_postgrest="kind=eq.physical",
    steps=(
        Step(
            edits=(),
            products={
                "cms_A-100": Product(
                    "Wool hat", "eur", 1250, description="Warm.", metadata={"sku": "A-100"}
                ),
                "cms_A-101": Product("Canvas tote", "usd", 990, metadata={"sku": "A-101"}),
                "cms_A-104": Product(
                    "Old scarf", "eur", 1500, active=False, metadata={"sku": "A-104"}
                ),
                "cms_A-105": Product("Sock pack", "gbp", 450, metadata={"sku": "A-105"}),
            },
        ),
        Step(  # a new price in cents, a published row back to draft, a draft published
            edits=(
                "update {t} set price_cents = 1399 where sku = 'A-100'",
                "update {t} set status = 'draft' where sku = 'A-101'",
                "update {t} set status = 'active' where sku = 'A-103'",
            ),
            products={
                "cms_A-100": Product(
                    "Wool hat", "eur", 1399, description="Warm.", metadata={"sku": "A-100"}
                ),
                "cms_A-103": Product("Rain jacket", "eur", 8900, metadata={"sku": "A-103"}),
                "cms_A-104": Product(
                    "Old scarf", "eur", 1500, active=False, metadata={"sku": "A-104"}
                ),
                "cms_A-105": Product("Sock pack", "gbp", 450, metadata={"sku": "A-105"}),
            },
            archived=("cms_A-101",),
        ),
        Step(  # the draft published again
            edits=("update {t} set status = 'active' where sku = 'A-101'",),
            products={
                "cms_A-100": Product(
                    "Wool hat", "eur", 1399, description="Warm.", metadata={"sku": "A-100"}
                ),
                "cms_A-101": Product("Canvas tote", "usd", 990, metadata={"sku": "A-101"}),
                "cms_A-103": Product("Rain jacket", "eur", 8900, metadata={"sku": "A-103"}),
                "cms_A-104": Product(
                    "Old scarf", "eur", 1500, active=False, metadata={"sku": "A-104"}
                ),
                "cms_A-105": Product("Sock pack", "gbp", 450, metadata={"sku": "A-105"}),
            },
        ),
    ),
)

# Supabase's starter table: bigint identity ids, prices in dollars, one image URL, a boolean
# is_active and soft deletes in deleted_at; no currency column.
SUPABASE_STARTER = OwnSchema(
    name="supabase_starter",
    postgres_ddl=(
        """create table {t} (
            id bigint generated by default as identity primary key, name text not null,
            description text, price numeric(10, 2) not null, image_url text,
            is_active boolean not null default true, deleted_at timestamptz,
            created_at timestamptz not null default now(),
            updated_at timestamptz not null default now())""",
    ),
    sqlite_ddl=(
        """create table {t} (
            id integer primary key, name text not null, description text,
            price numeric not null, image_url text, is_active boolean not null default true,
            deleted_at text, created_at text not null default CURRENT_TIMESTAMP,
            updated_at text not null default CURRENT_TIMESTAMP)""",
    ),
    rows=(
        """insert into {t} (id, name, description, price, image_url, is_active, deleted_at)
            values
            (1, 'Starter plan', 'For one person.', 9.99, 'https://img.example.com/1.png', true,
             NULL),
            (2, 'Pro plan', NULL, 29.00, NULL, true, NULL),
            (3, 'Legacy plan', NULL, 5.00, NULL, true, '2026-01-01 00:00:00+00'),
            (9, 'Team plan', NULL, 99.50, NULL, false, NULL)""",
    ),
    tables=("{t}",),
    catalog={
        "columns": {"images": "image_url", "active": "is_active"},
        "currency": "usd",
        "deleted": {"column": "deleted_at"},
    },
    steps=(
        Step(
            edits=(),
            products={
                "cms_1": Product("Starter plan", "usd", 999, description="For one person."),
                "cms_2": Product("Pro plan", "usd", 2900),
                "cms_9": Product("Team plan", "usd", 9950, active=False),
            },
        ),
        Step(  # a new price, a soft delete, a soft-deleted row restored
            edits=(
                "update {t} set price = 12.49 where id = 1",
                "update {t} set deleted_at = CURRENT_TIMESTAMP where id = 2",
                "update {t} set deleted_at = NULL where id = 3",
            ),
            products={
                "cms_1": Product("Starter plan", "usd", 1249, description="For one person."),
                "cms_3": Product("Legacy plan", "usd", 500),
                "cms_9": Product("Team plan", "usd", 9950, active=False),
            },
            archived=("cms_2",),
        ),
        Step(
            edits=("update {t} set deleted_at = NULL where id = 2",),
            products={
                "cms_1": Product("Starter plan", "usd", 1249, description="For one person."),
                "cms_2": Product("Pro plan", "usd", 2900),
                "cms_3": Product("Legacy plan", "usd", 500),
                "cms_9": Product("Team plan", "usd", 9950, active=False),
            },
        ),
    ),
)

# A storefront view joining products to their categories, amounts in minor units (yen have
# none, dinars three), no images; the category becomes metadata.
_STOREFRONT_QUERY = (
    "SELECT p.*, c.title AS category FROM {t}_products p "
    "JOIN {t}_categories c ON c.id = p.category_id"
)
STOREFRONT_VIEW = OwnSchema(
    name="storefront_view",
    postgres_ddl=(
        "create table {t}_categories (id integer primary key, title text not null)",
        """create table {t}_products (
            product_id integer primary key, label text not null, details text,
            amount_minor integer not null, currency text not null, published boolean not null,
            category_id integer not null references {t}_categories (id),
            changed_at timestamptz not null default now())""",
        "create view {t} as " + _STOREFRONT_QUERY,
    ),
    sqlite_ddl=(
        "create table {t}_categories (id integer primary key, title text not null)",
        """create table {t}_products (
            product_id integer primary key, label text not null, details text,
            amount_minor integer not null, currency text not null, published boolean not null,
            category_id integer not null references {t}_categories (id),
            changed_at text not null default CURRENT_TIMESTAMP)""",
        "create view {t} as " + _STOREFRONT_QUERY,
    ),
    rows=(
        "insert into {t}_categories (id, title) values (1, 'Kitchen'), (2, 'Living')",
        """insert into {t}_products (product_id, label, details, amount_minor, currency,
            published, category_id) values
            (10, 'Espresso cup', NULL, 1500, 'JPY', true, 1),
            (11, 'Tea pot', 'Cast iron.', 2500, 'kwd', true, 1),
            (12, 'Floor lamp', NULL, 4900, 'EUR', true, 2)""",
    ),
    tables=("{t}_categories", "{t}_products"),
    catalog={
        "columns": {
            "id": "product_id",
            "name": "label",
            "description": "details",
            "price": "amount_minor",
            "images": None,
            "active": "published",
            "updated_at": "changed_at",
        },
        "price_unit": "minor",
        "metadata": {"category": "category"},
    },
    query=_STOREFRONT_QUERY,
    steps=(
        Step(
            edits=(),
            products={
                "cms_10": Product("Espresso cup", "jpy", 1500, metadata={"category": "Kitchen"}),
                "cms_11": Product(
                    "Tea pot",
                    "kwd",
                    2500,
                    description="Cast iron.",
                    metadata={"category": "Kitchen"},
                ),
                "cms_12": Product("Floor lamp", "eur", 4900, metadata={"category": "Living"}),
            },
        ),
        Step(  # a category renamed (metadata only), a new price, a row deleted for good
            edits=(
                "update {t}_categories set title = 'Dining' where id = 1",
                "update {t}_products set amount_minor = 5200 where product_id = 12",
                "delete from {t}_products where product_id = 11",
            ),
            products={
                "cms_10": Product("Espresso cup", "jpy", 1500, metadata={"category": "Dining"}),
                "cms_12": Product("Floor lamp", "eur", 5200, metadata={"category": "Living"}),
            },
            archived=("cms_11",),
        ),
        Step(
            edits=(
                """insert into {t}_products (product_id, label, details, amount_minor, currency,
                    published, category_id) values (11, 'Tea pot', 'Cast iron.', 2500, 'kwd',
                    true, 1)""",
            ),
            products={
                "cms_10": Product("Espresso cup", "jpy", 1500, metadata={"category": "Dining"}),
                "cms_11": Product(
                    "Tea pot",
                    "kwd",
                    2500,
                    description="Cast iron.",
                    metadata={"category": "Dining"},
                ),
                "cms_12": Product("Floor lamp", "eur", 5200, metadata={"category": "Living"}),
            },
        ),
    ),
)

OWN_SCHEMAS = (SHOP_EXPORT, SUPABASE_STARTER, STOREFRONT_VIEW)

# Tags in a PostgreSQL array, sizes in a JSON array (PostgreSQL only), both Stripe metadata,
# next to a number and a JSON object that stay their text.
TAGGED = OwnSchema(
    name="tagged",
    postgres_ddl=(
        """create table {t} (
            id integer primary key, name text not null, price numeric(10, 2) not null,
            tags text[], sizes jsonb, weight numeric(6, 2))""",
    ),
    sqlite_ddl=(),
    rows=(
        """insert into {t} (id, name, price, tags, sizes, weight) values
            (1, 'Wool hat', 12.50, array['tag4', 'line2'], '["S", "M"]', 0.50),
            (2, 'Canvas tote', 9.90, array['with, comma', null], '[]', NULL),
            (3, 'Scarf', 15.00, array[]::text[], jsonb_build_object('size', 'L'), 1.00)""",
    ),
    tables=("{t}",),
    catalog={
        "columns": {"description": None, "images": None, "active": None, "updated_at": None},
        "currency": "eur",
        "metadata": {"tags": "tags", "sizes": "sizes", "weight": "weight"},
    },
)

# A SaaS's plans: each with monthly and yearly prices in EUR and USD, a default flag, labels,
# a price row that no longer counts (inactive), one Stripe can't take (a fortnightly interval)
# and one whose plan doesn't exist.
PLANS = OwnSchema(
    name="plans",
    postgres_ddl=(
        "create table {t} (slug text primary key, title text not null, blurb text)",
        """create table {t}_prices (
            price_key text primary key, plan_slug text not null, amount_cents integer not null,
            currency text not null, billing_interval text, billing_every integer,
            is_active boolean not null default true, is_default boolean not null default false,
            label text)""",
    ),
    sqlite_ddl=(
        "create table {t} (slug text primary key, title text not null, blurb text)",
        """create table {t}_prices (
            price_key text primary key, plan_slug text not null, amount_cents integer not null,
            currency text not null, billing_interval text, billing_every integer,
            is_active integer not null default 1, is_default integer not null default 0,
            label text)""",
    ),
    rows=(
        """insert into {t} (slug, title, blurb) values
            ('basic', 'Basic', 'For one.'), ('team', 'Team', 'For ten.')""",
        """insert into {t}_prices (price_key, plan_slug, amount_cents, currency,
            billing_interval, billing_every, is_active, is_default, label) values
            ('basic-m-eur', 'basic', 900, 'eur', 'month', NULL, true, true, 'Monthly'),
            ('basic-m-usd', 'basic', 1000, 'usd', 'month', NULL, true, false, NULL),
            ('basic-y-eur', 'basic', 9000, 'EUR', 'year', 1, true, false, 'Yearly'),
            ('basic-y-usd', 'basic', 10000, 'usd', 'year', NULL, true, false, NULL),
            ('ghost-m-eur', 'ghost', 100, 'eur', 'month', NULL, true, true, NULL),
            ('team-2w-eur', 'team', 1400, 'eur', 'fortnight', NULL, true, false, NULL),
            ('team-m-eur', 'team', 2900, 'eur', 'month', NULL, true, false, NULL),
            ('team-old', 'team', 2500, 'eur', 'month', NULL, false, false, NULL),
            ('team-q-eur', 'team', 7500, 'eur', 'month', 3, true, true, 'Quarterly')""",
    ),
    tables=("{t}", "{t}_prices"),
    catalog={
        "columns": {
            "id": "slug",
            "name": "title",
            "description": "blurb",
            "images": None,
            "active": None,
            "updated_at": None,
        }
    },
    prices={
        "table": "{t}_prices",
        "columns": {
            "id": "price_key",
            "product_id": "plan_slug",
            "amount": "amount_cents",
            "interval": "billing_interval",
            "interval_count": "billing_every",
            "active": "is_active",
            "default": "is_default",
            "nickname": "label",
        },
        "price_unit": "minor",
    },
)

# A shop with sizes at different prices, one-time, one currency, no default column: the first
# price by id is the default.
SIZES = OwnSchema(
    name="sizes",
    postgres_ddl=(
        "create table {t} (id integer primary key, name text not null)",
        """create table {t}_sizes (
            id integer primary key, product_id integer not null, price numeric not null,
            currency text not null)""",
    ),
    sqlite_ddl=(
        "create table {t} (id integer primary key, name text not null)",
        """create table {t}_sizes (
            id integer primary key, product_id integer not null, price numeric not null,
            currency text not null)""",
    ),
    rows=(
        "insert into {t} (id, name) values (1, 'Tee'), (2, 'Hoodie'), (10, 'Cap')",
        """insert into {t}_sizes (id, product_id, price, currency) values
            (11, 1, 15.00, 'eur'), (12, 1, 15.00, 'eur'), (13, 1, 17.50, 'eur'),
            (21, 2, 45.00, 'eur'), (22, 2, 49.00, 'eur'), (101, 10, 12.00, 'eur')""",
    ),
    tables=("{t}", "{t}_sizes"),
    catalog={"columns": {"description": None, "images": None, "active": None, "updated_at": None}},
    prices={"table": "{t}_sizes", "columns": {"amount": "price"}},
)
PRICES_SCHEMAS = (PLANS, SIZES)

# Many plans (PostgreSQL only), three prices each: one-time EUR (the default), monthly EUR,
# yearly USD.
MANY_PLANS_COUNT = 30
MANY_PLANS = OwnSchema(
    name="many_plans",
    postgres_ddl=(
        "create table {t} (id text primary key, name text not null)",
        """create table {t}_prices (id text primary key, product_id text not null,
            amount integer not null, currency text not null, interval text)""",
    ),
    sqlite_ddl=(),
    rows=(
        f"""insert into {{t}} (id, name) select 'plan-' || lpad(n::text, 3, '0'), 'Plan ' || n
            from generate_series(1, {MANY_PLANS_COUNT}) as n""",
        """insert into {t}_prices (id, product_id, amount, currency, interval)
            select id || '-' || kind, id, amount, currency, interval from {t},
            (values ('a-once', 1250, 'eur', null), ('b-monthly', 990, 'eur', 'month'),
                    ('c-yearly', 10900, 'usd', 'year')) as price(kind, amount, currency, interval)""",
    ),
    tables=("{t}", "{t}_prices"),
    catalog={"columns": {"description": None, "images": None, "active": None, "updated_at": None}},
    prices={"table": "{t}_prices", "price_unit": "minor"},
)


@dataclass
class Cms:
    """A schema's tables in one backend (`name` replaces `{t}`): run SQL on them, read every
    row of them, open the catalog on them."""

    schema: OwnSchema
    name: str
    database_url: str | None = None  # a direct SQL catalog
    supabase: tuple[str, str] | None = None  # Supabase's URL and service_role key
    postgres: psycopg.Connection | None = None
    sqlite_path: str | None = None

    def execute(self, *statements: str) -> None:
        for statement in statements:
            text = statement.format(t=self.name)
            if self.postgres is not None:
                self.postgres.execute(text)
            else:
                with closing(sqlite3.connect(self.sqlite_path)) as connection, connection:
                    connection.execute(text)

    def snapshot(self) -> dict[str, list[tuple]]:
        """Every row of the CMS's own tables, every column, as the database returns it."""
        tables = [table.format(t=self.name) for table in self.schema.tables]
        if self.postgres is not None:
            return {
                table: self.postgres.execute(
                    sql.SQL("select * from {} order by 1").format(sql.Identifier(table))
                ).fetchall()
                for table in tables
            }
        with closing(sqlite3.connect(self.sqlite_path)) as connection:
            return {
                table: connection.execute(f"select * from {table} order by 1").fetchall()
                for table in tables
            }
