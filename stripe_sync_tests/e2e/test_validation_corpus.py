"""A corpus of dirty catalog rows through validation and the real pipeline
(docs/how-it-works.md, "Validation rules"): every bad row is quarantined with its reason
code(s) and never reaches Stripe, every good row in the same batches is synced exactly and
cleaned, nothing crashes.

The catalog is a PostgreSQL table whose `price` column is `text` (so "abc" can be stored)
and without a primary key (so duplicate ids can be). PostgreSQL text can't hold NUL bytes,
so the NUL rows go through a SQLite catalog (test_nul_bytes_...) and through
validate_batch directly.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from decimal import Decimal

import dagster as dg
import pandas as pd
import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from stripe_sync.core.contract import SOURCE_COLUMNS, WRITE_BACK_COLUMNS
from stripe_sync.core.validation import ValidationRules, validate_batch
from stripe_sync_tests.conftest import ProductsTable, stripe_state, write_requests

CODES = frozenset(
    {
        "id_missing",
        "id_duplicate",
        "name_missing",
        "name_too_long",
        "description_too_long",
        "price_missing",
        "price_not_a_number",
        "price_ambiguous",
        "price_negative",
        "price_too_precise",
        "currency_unsupported",
        "price_below_minimum",
        "price_above_maximum",
        "price_free_not_allowed",
        "metadata_invalid",
    }
)
WARNING_CODES = frozenset({"image_dropped", "images_truncated", "price_rounded"})
METADATA_COLUMNS = "color,notes"
_CODE_IN_TEXT = re.compile(r"(?:^|; )([a-z_]+): ")


def codes_of(sync_error: str | None) -> set[str]:
    """The reason codes of a `sync_error` ("code: message; code: message")."""
    if not sync_error:
        return set()
    return {code for code in _CODE_IN_TEXT.findall(sync_error) if code in CODES}


def codes_of_reasons(reasons) -> set[str]:
    return {reason.split(":", 1)[0] for reason in reasons}


# ---------------------------------------------------------------- the corpus

_UNSET = object()


@dataclass(frozen=True)
class Case:
    slug: str
    row: dict  # name, description, price, currency, images, active, color, notes
    codes: frozenset = frozenset()  # reasons expected; empty: a valid row
    also_allowed: frozenset = frozenset()  # codes a reading of the docs may add
    id: str | None = None  # None: r<position>-<slug>
    # for valid rows: what Stripe must get
    name: str | None = None
    description: object = None
    currency: str = "eur"
    unit_amount: int | None = None
    images: tuple = ()
    warnings: frozenset = frozenset()
    pipeline_only: bool = False  # needs the catalog's metadata mapping
    metadata: dict = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not self.codes


def bad(slug: str, codes: str | set, *, also: set = frozenset(), id: str | None = None, **row):
    row = {"name": f"Bad {slug}", "price": "5.00", "currency": "eur", "color": "red", **row}
    codes = {codes} if isinstance(codes, str) else set(codes)
    assert codes <= CODES
    return Case(
        slug,
        row,
        frozenset(codes),
        frozenset(also),
        id=id,
        pipeline_only="notes" in row and row["notes"] is not None,
    )


def good(
    slug: str,
    price: str,
    unit_amount: int,
    *,
    name: str,
    expect_name: str | None = None,
    currency: str | None = "eur",
    expect_currency: str | None = None,
    description: str | None = None,
    expect_description: object = _UNSET,
    images=None,
    expect_images: tuple = (),
    warnings: set = frozenset(),
    notes: str | None = None,
):
    return Case(
        slug,
        {
            "name": name,
            "description": description,
            "price": price,
            "currency": currency,
            "images": images,
            "color": "blue",
            "notes": notes,
        },
        name=name if expect_name is None else expect_name,
        description=description if expect_description is _UNSET else expect_description,
        currency=expect_currency or currency,
        unit_amount=unit_amount,
        images=tuple(expect_images),
        warnings=frozenset(warnings),
        pipeline_only=notes is not None,
        metadata={"color": "blue", **({"notes": notes} if notes is not None else {})},
    )


LONG_URL = "https://img.example.com/" + "a" * (3_000 - len("https://img.example.com/"))
URL_2048 = "https://img.example.com/" + "b" * (2_048 - len("https://img.example.com/") - 4) + ".png"
NINE_IMAGES = [f"https://img.example.com/{n}.png" for n in range(9)]
NAME_250 = "a" * 125 + "b" * 125

BAD = [
    bad("id-missing", "id_missing", id="", name="No id"),
    bad("dup", "id_duplicate", id="r100-dup", name="Dup one"),
    bad("dup", "id_duplicate", id="r100-dup", name="Dup two", price="6.00"),
    bad("dup2", {"id_duplicate", "name_missing"}, id="r101-dup2", name=None),
    # rows sharing an id share one write-back, so each carries the reasons of both
    bad("dup2", {"id_duplicate", "name_missing"}, id="r101-dup2", name="Dup2 two"),
    # names
    bad("name-null", "name_missing", name=None),
    bad("name-spaces", "name_missing", name="   "),
    bad("name-whitespace", "name_missing", name="\t\n \r"),
    bad("name-c0-controls", "name_missing", name="\x01\x02\x1b\x1f\x7f"),
    bad("name-c1-controls", "name_missing", name="\x85\x9f \x07"),
    bad("name-251", "name_too_long", name="x" * 251),
    bad("name-10000", "name_too_long", name="Long " + "L" * 9_995),
    bad("name-emoji-251", "name_too_long", name="🚀" * 251),
    bad("description-40001", "description_too_long", description="d" * 40_001),
    # prices
    bad("price-null", "price_missing", price=None),
    bad("price-empty", "price_missing", price=""),
    bad("price-spaces", "price_missing", price="   "),
    bad("price-abc", "price_not_a_number", price="abc"),
    bad("price-12-5-0", "price_not_a_number", price="12.5.0"),
    bad("price-1e3", "price_not_a_number", price="1e3"),
    bad("price-eur-prefix", "price_not_a_number", price="EUR 12.50"),
    bad("price-euro-sign", "price_not_a_number", price="€12"),
    bad("price-nan", "price_not_a_number", price="NaN"),
    bad("price-inf", "price_not_a_number", price="inf"),
    bad("price-infinity", "price_not_a_number", price="Infinity"),
    bad("price-true", "price_not_a_number", price="true"),
    bad("price-decimal-comma", "price_ambiguous", price="12,50"),
    bad("price-de-thousands", "price_ambiguous", price="1.234,56"),
    bad("price-en-thousands", "price_ambiguous", price="1,234.56"),
    bad("price-minus-5", "price_negative", price="-5"),
    bad("price-minus-cent", "price_negative", price="-0.01"),
    bad("eur-12-505", "price_too_precise", price="12.505"),
    bad("jpy-100-5", "price_too_precise", price="100.5", currency="jpy"),
    # below JPY's 50 minimum as well: a reading that checks the minimum may list it too
    bad(
        "jpy-49-99",
        "price_too_precise",
        also={"price_below_minimum"},
        price="49.99",
        currency="jpy",
    ),
    bad("kwd-1-2345", "price_too_precise", price="1.2345", currency="kwd"),
    bad("isk-1-5", "price_too_precise", price="1.5", currency="isk"),
    # currencies
    bad("currency-xyz", "currency_unsupported", currency="xyz"),
    bad("currency-euro", "currency_unsupported", currency="euro"),
    bad("currency-symbol", "currency_unsupported", currency="€"),
    # business limits
    bad("eur-0-30", "price_below_minimum", price="0.30"),
    bad("usd-0-49", "price_below_minimum", price="0.49", currency="usd"),
    bad("gbp-0-29", "price_below_minimum", price="0.29", currency="gbp"),
    bad("jpy-49", "price_below_minimum", price="49", currency="jpy"),
    bad("dkk-2-49", "price_below_minimum", price="2.49", currency="dkk"),
    bad("eur-2000000", "price_above_maximum", price="2000000"),
    bad("eur-1000000-01", "price_above_maximum", price="1000000.01"),
    bad("usd-5000000", "price_above_maximum", price="5000000", currency="usd"),
    bad("eur-free", "price_free_not_allowed", price="0"),
    bad("usd-free", "price_free_not_allowed", price="0.00", currency="usd"),
    bad("jpy-free", "price_free_not_allowed", price="0", currency="jpy"),
    bad("metadata-501", "metadata_invalid", notes="n" * 501),
    # combinations: every reason listed
    bad("combo-name-abc", {"name_missing", "price_not_a_number"}, name=None, price="abc"),
    bad(
        "combo-three",
        {"name_missing", "price_ambiguous", "currency_unsupported"},
        name="",
        price="12,50",
        currency="xyz",
    ),
    bad("combo-long-negative", {"name_too_long", "price_negative"}, name="y" * 300, price="-5"),
    bad(
        "combo-description-minimum",
        {"description_too_long", "price_below_minimum"},
        description="d" * 40_001,
        price="0.30",
    ),
    bad("combo-blank-precise", {"name_missing", "price_too_precise"}, name="   ", price="12.505"),
    bad("combo-euro-empty", {"currency_unsupported", "price_missing"}, currency="euro", price=""),
    bad(
        "combo-controls-free",
        {"name_missing", "price_free_not_allowed"},
        name="\x01\x02",
        price="0",
    ),
    bad(
        "combo-metadata-max-name",
        {"metadata_invalid", "price_above_maximum", "name_missing"},
        name=None,
        price="2000000",
        notes="n" * 600,
    ),
]

GOOD = [
    good("plain", "12.50", 1250, name="Plain mug"),
    good("price-spaces", " 7 ", 700, name="Seven"),
    good("currency-upper", "19.99", 1999, name="Upper EUR", currency="EUR", expect_currency="eur"),
    good(
        "currency-empty", "3.30", 330, name="Default currency", currency="", expect_currency="eur"
    ),
    good("currency-null", "3.30", 330, name="No currency", currency=None, expect_currency="eur"),
    good("usd-minimum", "0.50", 50, name="Cheapest", currency="Usd", expect_currency="usd"),
    good("eur-maximum", "1000000", 100_000_000, name="Dearest"),
    good("jpy-minimum", "50", 50, name="Yen", currency="jpy"),
    good("bhd", "1.234", 1234, name="Dinar", currency="bhd"),
    good("kwd", "0.250", 250, name="Kuwaiti", currency="kwd"),
    good("isk", "12.00", 1200, name="Krona", currency="isk"),
    good("gbp-minimum", "0.30", 30, name="Pound", currency="gbp"),
    good("emoji", "9.99", 999, name="Rocket 🚀 mug 👨‍👩‍👧‍👦 ☕️ 🇩🇪"),
    good("arabic", "15.00", 1500, name="مصباح مكتب عربي", description="وصف المنتج"),
    good("hebrew", "15.00", 1500, name="מנורת שולחן 2 ליטר", description="תיאור"),
    good(
        "sql",
        "5.00",
        500,
        name="Robert'); DROP TABLE products;--",
        description="1; DELETE FROM products WHERE 1=1; --",
    ),
    good(
        "html",
        "5.00",
        500,
        name="<script>alert(1)</script>",
        description='<img src=x onerror="alert(1)"> & &amp; %s {0} ${x}',
    ),
    good("nfc", "4.20", 420, name="Cafe\u0301 cre\u0300me", expect_name="Café crème"),
    good("controls-inside", "4.20", 420, name="Desk\x07 lamp\x1b", expect_name="Desk lamp"),
    good("controls-around", "4.20", 420, name="\x01Bell\x9f", expect_name="Bell"),
    good("padded", "4.20", 420, name="  Padded name \t ", expect_name="Padded name"),
    good(
        "name-250-after-cleaning",
        "4.20",
        420,
        name="  " + "a" * 125 + "\x07" + "b" * 125 + "\x1f ",
        expect_name=NAME_250,
    ),
    good(
        "description-controls",
        "4.20",
        420,
        name="Lines",
        description="  Line one\x07\nLine two\tend\x1b ",
        expect_description="Line one\nLine two\tend",
    ),
    good("description-40000", "4.20", 420, name="Long story", description="w" * 40_000),
    good(
        "image-http",
        "8.00",
        800,
        name="Insecure image",
        images=["http://img.example.com/a.png", "https://img.example.com/b.png"],
        expect_images=["https://img.example.com/b.png"],
        warnings={"image_dropped"},
    ),
    good(
        "images-nine",
        "8.00",
        800,
        name="Nine images",
        images=NINE_IMAGES,
        expect_images=NINE_IMAGES[:8],
        warnings={"images_truncated"},
    ),
    good(
        "image-3000",
        "8.00",
        800,
        name="Huge URL",
        images=[LONG_URL, "https://img.example.com/ok.png"],
        expect_images=["https://img.example.com/ok.png"],
        warnings={"image_dropped"},
    ),
    good(
        "images-not-absolute-https",
        "8.00",
        800,
        name="Odd images",
        images=["relative/x.png", "ftp://img.example.com/x.png", "javascript:alert(1)"],
        warnings={"image_dropped"},
    ),
    good(
        "image-2048",
        "8.00",
        800,
        name="Longest URL",
        images=[URL_2048],
        expect_images=[URL_2048],
    ),
    good("metadata-500", "8.00", 800, name="Noted", notes="n" * 500),
]
assert len(URL_2048) == 2_048 and len(LONG_URL) == 3_000

# NUL bytes: PostgreSQL text can't hold them, SQLite and validate_batch can.
NUL_BAD = [
    bad("nul-only-name", "name_missing", name="\x00\x00 \x00"),
    bad("nul-name-abc", {"name_missing", "price_not_a_number"}, name="\x00", price="abc"),
]
NUL_GOOD = [
    good("nul-in-name", "6.50", 650, name="Desk\x00Lamp\x00", expect_name="DeskLamp"),
    good(
        "nul-in-description",
        "6.50",
        650,
        name="Described",
        description="Line\x00 one\nLine two\x00",
        expect_description="Line one\nLine two",
    ),
    good("nul-neighbour", "6.50", 650, name="Plain neighbour"),
]


def interleave(bad_cases: list[Case], good_cases: list[Case]) -> list[tuple[str, Case]]:
    """(id, case) in id order, a good row after every two bad ones, so every batch mixes
    both; ids are r<position>-<slug> unless the case fixes its own."""
    ordered, goods = [], iter(good_cases)
    for n, case in enumerate(bad_cases):
        ordered.append(case)
        if n % 2 == 1 and (next_good := next(goods, None)) is not None:
            ordered.append(next_good)
    ordered += list(goods)
    return [
        (case.id if case.id is not None else f"r{n:03d}-{case.slug}"[:64], case)
        for n, case in enumerate(ordered, start=200)
    ]


# ---------------------------------------------------------------- validate_batch directly


def raw_frame(cases: list[tuple[str, Case]]) -> pd.DataFrame:
    rows = [
        {
            "batch": "00000~test",
            "id": id_,
            **{k: v for k, v in case.row.items() if k in SOURCE_COLUMNS},
        }
        for id_, case in cases
    ]
    return pd.DataFrame(rows, columns=["batch", *SOURCE_COLUMNS, *WRITE_BACK_COLUMNS], dtype=object)


def test_validate_batch_gives_every_corpus_row_its_reasons_and_cleans_the_good_ones():
    cases = interleave(
        [c for c in BAD + NUL_BAD if not c.pipeline_only],
        [c for c in GOOD + NUL_GOOD if not c.pipeline_only],
    )
    validated = validate_batch(raw_frame(cases), ValidationRules())

    assert len(validated) == len(cases)
    assert list(validated["cms_id"]) == [id_ for id_, _ in cases]
    problems = []
    for (id_, case), row in zip(cases, validated.to_dict("records"), strict=True):
        got = codes_of_reasons(row["reasons"])
        if not (case.codes <= got <= case.codes | case.also_allowed):
            problems.append((id_, "reasons", sorted(case.codes), row["reasons"]))
        for reason in row["reasons"]:
            code, _, message = reason.partition(": ")
            if code not in CODES or not message.strip():
                problems.append((id_, "reason not `code: message`", reason))
        if case.valid:
            seen = {
                "name": row["name"],
                "description": row["description"],
                "currency": row["currency"],
                "unit_amount": row["unit_amount"],
                "images": tuple(row["images"]),
                "warnings": codes_of_reasons(row["warnings"]),
            }
            expected = {
                "name": case.name,
                "description": case.description,
                "currency": case.currency,
                "unit_amount": case.unit_amount,
                "images": case.images,
                "warnings": set(case.warnings),
            }
            if seen != expected:
                problems.append(
                    (id_, {k: (expected[k], seen[k]) for k in seen if seen[k] != expected[k]})
                )
            for warning in row["warnings"]:
                code, _, message = warning.partition(": ")
                if code not in WARNING_CODES or not message.strip():
                    problems.append((id_, "warning not `code: message`", warning))
            if type(row["unit_amount"]) is not int:
                problems.append((id_, "unit_amount is not an int", row["unit_amount"]))
    assert problems == []


def test_validate_batch_takes_python_values_too():
    """Numbers as a catalog driver may deliver them: int, Decimal, float, bool, infinity."""
    values = [
        ("int", 12, set(), 1200),
        ("decimal", Decimal("12.50"), set(), 1250),
        ("float", 19.99, set(), 1999),
        ("float-point-one", 0.1, {"price_below_minimum"}, None),
        ("bool", True, {"price_not_a_number"}, None),
        # (float NaN is left out: in a DataFrame it is pandas' NULL; "NaN" text is in the corpus)
        ("inf", float("inf"), {"price_not_a_number"}, None),
        ("negative-int", -5, {"price_negative"}, None),
        ("negative-decimal", Decimal("-0.50"), {"price_negative"}, None),
    ]
    frame = raw_frame(
        [
            (f"v-{slug}", Case(slug, {"name": "N", "price": price, "currency": "eur"}))
            for slug, price, _, _ in values
        ]
    )
    validated = validate_batch(frame, ValidationRules()).to_dict("records")
    seen = [
        (
            row["cms_id"],
            codes_of_reasons(row["reasons"]),
            row["unit_amount"] if not row["reasons"] else None,
        )
        for row in validated
    ]
    assert seen == [(f"v-{slug}", codes, amount) for slug, _, codes, amount in values]


# ---------------------------------------------------------------- the pipeline

_DIRTY_DDL = """
    create table {table} (
        seq bigserial,
        {id} text,
        {name} text,
        {description} text,
        {price} text,
        {currency} text,
        {images} text[],
        {active} boolean,
        {color} text,
        {notes} text,
        {updated_at} timestamptz not null default now(),
        stripe_product_id text,
        stripe_price_id text,
        sync_status text,
        sync_error text,
        synced_at timestamptz,
        sync_hash text
    )
"""
# The CMS's columns (updated_at is set by the table) and two columns mapped to metadata.
_DIRTY_COLUMNS = (*SOURCE_COLUMNS[:-1], "color", "notes")
# Each pipeline field (and metadata key) in the column of its name ...
OWN_NAMES = {name: name for name in (*SOURCE_COLUMNS, "color", "notes")}
# ... or in a column as another CMS names it, through catalog.columns and catalog.metadata.
RENAMED = {
    "id": "sku",
    "name": "title",
    "description": "body",
    "price": "amount",
    "currency": "currency_code",
    "images": "image_list",
    "active": "is_live",
    "updated_at": "modified_at",
    "color": "colour",
    "notes": "remarks",
}


@dataclass
class DirtyTable(ProductsTable):
    """A catalog table that holds what a CMS might: text prices, duplicate ids; its columns
    named by `columns` (pipeline field -> column)."""

    columns: dict[str, str] = field(default_factory=lambda: dict(OWN_NAMES))

    def insert(self, cases: list[tuple[str, Case]]) -> None:
        statement = sql.SQL("insert into {} ({}) values ({})").format(
            sql.Identifier(self.name),
            sql.SQL(", ").join(sql.Identifier(self.columns[c]) for c in _DIRTY_COLUMNS),
            sql.SQL(", ").join(sql.Placeholder() * len(_DIRTY_COLUMNS)),
        )
        with self.connection.cursor() as cursor:
            cursor.executemany(
                statement,
                [(id_, *(case.row.get(c) for c in _DIRTY_COLUMNS[1:])) for id_, case in cases],
            )

    def update(self, id_: str, **columns: object) -> None:
        self.connection.execute(
            sql.SQL("update {} set {}, {} = now() where {} = %s").format(
                sql.Identifier(self.name),
                sql.SQL(", ").join(
                    sql.SQL("{} = %s").format(sql.Identifier(self.columns[c])) for c in columns
                ),
                sql.Identifier(self.columns["updated_at"]),
                sql.Identifier(self.columns["id"]),
            ),
            [*columns.values(), id_],
        )

    def rows(self) -> list[dict]:  # type: ignore[override] - duplicates can't be keyed by id
        """Every row (duplicates too), in insertion order, its columns by pipeline field."""
        with self.connection.cursor(row_factory=dict_row) as cursor:
            cursor.execute(
                sql.SQL("select *, {} as id from {} order by seq").format(
                    sql.Identifier(self.columns["id"]), sql.Identifier(self.name)
                )
            )
            return cursor.fetchall()


@pytest.fixture
def dirty_table(catalog_connection: psycopg.Connection, fresh_database_url: str):
    """Makes DirtyTables: `make(cases, columns=OWN_NAMES) -> DirtyTable`; dropped after."""
    made: list[str] = []

    def make(cases: list[tuple[str, Case]], columns: dict[str, str] = OWN_NAMES) -> DirtyTable:
        name = f"dirty_{secrets.token_hex(4)}"
        catalog_connection.execute(
            sql.SQL(_DIRTY_DDL).format(
                table=sql.Identifier(name),
                **{field: sql.Identifier(column) for field, column in columns.items()},
            )
        )
        made.append(name)
        table = DirtyTable(name, fresh_database_url, catalog_connection, dict(columns))
        table.insert(cases)
        return table

    yield make
    for name in made:
        catalog_connection.execute(sql.SQL("drop table {}").format(sql.Identifier(name)))


def use_dirty_catalog(pipeline_env, table: DirtyTable, **variables: str) -> None:
    """The pipeline on the table: its columns mapped by settings when they are renamed."""
    columns = {f: table.columns[f] for f in SOURCE_COLUMNS if table.columns[f] != f}
    metadata = {key: table.columns[key] for key in METADATA_COLUMNS.split(",")}
    if columns:
        variables |= {
            "STRIPE_SYNC_CATALOG_COLUMNS": json.dumps(columns),
            "STRIPE_SYNC_CATALOG_METADATA": json.dumps(metadata),
        }
    else:
        variables["STRIPE_SYNC_METADATA_COLUMNS"] = METADATA_COLUMNS
    pipeline_env.set(CATALOG_DATABASE_URL=table.database_url, CATALOG_TABLE=table.name, **variables)


def mentions(report: object, cms_id: str, code: str) -> bool:
    """Whether some object in the report JSON is about `cms_id` and names `code`."""
    if isinstance(report, dict):
        if report.get("cms_id") == cms_id and code in json.dumps(report, ensure_ascii=False):
            return True
        return any(mentions(value, cms_id, code) for value in report.values())
    if isinstance(report, list):
        return any(mentions(value, cms_id, code) for value in report)
    return False


def check_evaluations(run_ids: list[str], check_name: str) -> list:
    """The AssetCheckEvaluations of `check_name` in these runs, from the Dagster instance."""
    evaluations = []
    with dg.DagsterInstance.get() as instance:
        for run_id in run_ids:
            for record in instance.all_logs(
                run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
            ):
                evaluation = record.dagster_event.asset_check_evaluation_data
                if evaluation.check_name == check_name:
                    assert evaluation.asset_key == dg.AssetKey("validated_products")
                    evaluations.append(evaluation)
    return evaluations


def step_failures(run_ids: list[str]) -> list[str]:
    with dg.DagsterInstance.get() as instance:
        return [
            record.dagster_event.step_key
            for run_id in run_ids
            for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        ]


def assert_good_rows_synced(cases: list[tuple[str, Case]], rows: list[dict], emulator_url: str):
    products, prices = stripe_state(emulator_url)
    by_id = {p["id"]: p for p in products}
    written = {row["id"]: row for row in rows}
    problems = []
    for id_, case in cases:
        product = by_id.get(f"cms_{id_}")
        row = written[id_]
        if product is None:
            problems.append((id_, "not in Stripe", row["sync_status"], row["sync_error"]))
            continue
        price = prices[product["default_price"]]
        seen = {
            "name": product["name"],
            "description": product["description"],
            "images": tuple(product["images"]),
            "active": product["active"],
            "metadata": {k: v for k, v in product["metadata"].items() if k in ("color", "notes")},
            "cms_id": product["metadata"].get("cms_id"),
            "price": (price["currency"], price["unit_amount"], price["active"]),
            "write_back": (
                row["sync_status"],
                row["sync_error"],
                row["stripe_product_id"],
                row["stripe_price_id"],
            ),
        }
        expected = {
            "name": case.name,
            "description": case.description,
            "images": case.images,
            "active": True,
            "metadata": case.metadata,
            "cms_id": id_,
            "price": (case.currency, case.unit_amount, True),
            "write_back": ("synced", None, product["id"], product["default_price"]),
        }
        if seen != expected:
            problems.append(
                (id_, {k: (expected[k], seen[k]) for k in seen if seen[k] != expected[k]})
            )
    assert problems == []


def assert_quarantined(cases: list[tuple[str, Case]], rows: list[dict], emulator, report: dict):
    # Rows sharing an id (duplicates) share their write-back, so each one's sync_error must
    # hold its own reasons and may hold the other's.
    possible: dict[str, frozenset] = {}
    for id_, case in cases:
        possible[id_] = possible.get(id_, frozenset()) | case.codes | case.also_allowed
    problems = []
    for (id_, case), row in zip(cases, rows, strict=True):
        assert row["id"] == id_
        if case.valid:
            continue
        got = codes_of(row["sync_error"])
        if row["sync_status"] != "invalid" or not (case.codes <= got <= possible[id_]):
            problems.append((id_, sorted(case.codes), row["sync_status"], row["sync_error"]))
        if row["stripe_product_id"] is not None or row["stripe_price_id"] is not None:
            problems.append((id_, "has Stripe ids", row["stripe_product_id"]))
    assert problems == []
    # never sent to Stripe: no product, no request naming it
    bad_ids = {id_ for id_, case in cases if not case.valid}
    products, _ = stripe_state(emulator.base_url)
    assert [p["id"] for p in products if p["metadata"].get("cms_id") in bad_ids] == []
    assert [p["id"] for p in products if p["id"] in {f"cms_{i}" for i in bad_ids}] == []
    assert [
        e["path"]
        for e in emulator.requests()
        if any(i and f"cms_{i}" in e["path"] for i in bad_ids)
    ] == []
    # the report lists every invalid row (each of a duplicate pair) with its reasons
    listed = Counter(r["cms_id"] for r in report["invalid"])
    assert listed == Counter(id_ for id_, case in cases if not case.valid)
    for entry in report["invalid"]:
        expected = {case.codes for id_, case in cases if id_ == entry["cms_id"]}
        assert any(codes <= codes_of(entry["error"]) for codes in expected), entry


@pytest.mark.parametrize("columns", [OWN_NAMES, RENAMED], ids=["own schema", "mapped schema"])
def test_the_corpus_through_the_pipeline_quarantines_every_bad_row_and_syncs_every_good_one(
    columns, dirty_table, pipeline_env, emulator
):
    cases = interleave(BAD, GOOD)
    assert sum(not c.valid for _, c in cases) >= 40 and sum(c.valid for _, c in cases) >= 20
    table = dirty_table(cases, columns)
    use_dirty_catalog(pipeline_env, table, STRIPE_SYNC_BATCH_SIZE="25")

    result = pipeline_env.migrate(batches_per_run=2)

    assert result.succeeded, result.report_markdown
    assert len(result.new_batches) >= 3
    assert step_failures(result.run_ids) == []
    log = emulator.requests()
    assert all(e["status"] == 200 for e in log), [e for e in log if e["status"] != 200]
    good_cases = [(i, c) for i, c in cases if c.valid]
    bad_cases = [(i, c) for i, c in cases if not c.valid]
    assert Counter((e["method"], e["path"]) for e in write_requests(log)) == {
        ("POST", "/v1/products"): len(good_cases)
    }
    rows = table.rows()
    assert_quarantined(cases, rows, emulator, result.report)
    assert_good_rows_synced(good_cases, rows, emulator.base_url)
    assert result.report["counts"] == {
        "created": len(good_cases),
        "adopted": 0,
        "updated": 0,
        "unchanged": 0,
        "archived": 0,
        "orphaned": 0,
        "invalid": len(bad_cases),
        "held": 0,
        "failed": 0,
    }
    # every batch mixes good and bad rows
    assert len({r["batch"] for r in result.report["invalid"]}) == len(result.new_batches)
    # warnings don't stop a row, and the report lists them
    for id_, case in good_cases:
        for code in case.warnings:
            assert mentions(result.report, id_, code), (id_, code)
    assert not any(
        mentions(result.report, id_, "image_dropped") for id_, c in good_cases if not c.warnings
    )
    # every batch is far above 5% invalid: invalid_share warns (and doesn't block)
    shares = check_evaluations(result.run_ids, "invalid_share")
    assert shares and all(not e.passed for e in shares)
    assert {e.severity for e in shares} == {dg.AssetCheckSeverity.WARN}
    structure = check_evaluations(result.run_ids, "batch_structure")
    assert structure and all(e.passed for e in structure)

    # Fixing rows in the CMS makes the next run sync them, and only them.
    fixed = {
        next(i for i, c in cases if c.slug == "name-null"): {"name": "Fixed name"},
        next(i for i, c in cases if c.slug == "price-abc"): {"price": "15.00"},
        next(i for i, c in cases if c.slug == "combo-three"): {
            "name": "Fixed three",
            "price": "12.50",
            "currency": "EUR",
        },
    }
    for id_, edits in fixed.items():
        table.update(id_, **edits)
    before = len(emulator.requests())

    again = pipeline_env.migrate(batches_per_run=2)

    assert again.succeeded, again.report_markdown
    writes = write_requests(emulator.requests()[before:])
    assert Counter((e["method"], e["path"]) for e in writes) == {
        ("POST", "/v1/products"): len(fixed)
    }
    products, prices = stripe_state(emulator.base_url)
    by_id = {p["id"]: p for p in products}
    rows = {row["id"]: row for row in table.rows()}
    amounts = {"Fixed name": 500, "Bad price-abc": 1500, "Fixed three": 1250}
    for id_ in fixed:
        product = by_id[f"cms_{id_}"]
        assert rows[id_]["sync_status"] == "synced" and rows[id_]["sync_error"] is None, rows[id_]
        price = prices[product["default_price"]]
        assert (price["currency"], price["unit_amount"]) == ("eur", amounts[product["name"]])
    assert again.report["counts"] == {
        "created": len(fixed),
        "adopted": 0,
        "updated": 0,
        "unchanged": len(good_cases),
        "archived": 0,
        "orphaned": 0,
        "invalid": len(bad_cases) - len(fixed),
        "held": 0,
        "failed": 0,
    }
    assert not {r["cms_id"] for r in again.report["invalid"]} & set(fixed)


def test_nul_bytes_are_removed_on_the_way_through_a_sqlite_catalog(
    pipeline_env, emulator, tmp_path
):
    cases = interleave(NUL_BAD, NUL_GOOD)
    path = tmp_path / "catalog.db"
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute(
            "create table products (id TEXT primary key, name TEXT, description TEXT, "
            "price TEXT, currency TEXT, images TEXT, active BOOLEAN, updated_at TEXT, "
            "stripe_product_id TEXT, stripe_price_id TEXT, sync_status TEXT, sync_error TEXT, "
            "synced_at TIMESTAMP, sync_hash TEXT)"
        )
        connection.executemany(
            "insert into products (id, name, description, price, currency, updated_at) "
            "values (?, ?, ?, ?, ?, '2026-11-01T09:30:00+00:00')",
            [
                (id_, c.row["name"], c.row.get("description"), c.row["price"], c.row["currency"])
                for id_, c in cases
            ],
        )
        stored = connection.execute("select name from products where name like 'Desk%'").fetchone()
        assert stored == ("Desk\x00Lamp\x00",)  # SQLite really holds the NUL bytes
    pipeline_env.set(CATALOG_DATABASE_URL=f"sqlite:///{path}", CATALOG_TABLE="products")

    result = pipeline_env.migrate()

    assert result.succeeded, result.report_markdown
    with closing(sqlite3.connect(path)) as connection:
        connection.row_factory = sqlite3.Row
        rows = [dict(r) for r in connection.execute("select * from products order by rowid")]
    assert_quarantined(cases, rows, emulator, result.report)
    good_cases = [(i, c) for i, c in cases if c.valid]
    good_cases = [(i, Case(**{**c.__dict__, "metadata": {}})) for i, c in good_cases]  # no mapping
    assert_good_rows_synced(good_cases, rows, emulator.base_url)


# ---------------------------------------------------------------- options


def option_cases(*specs: tuple[str, str, str | None, set, int | None]) -> list[tuple[str, Case]]:
    """(slug, price, currency, reason codes, unit_amount) -> (id, case) rows."""
    cases = []
    for n, (slug, price, currency, codes, amount) in enumerate(specs):
        row = {"name": f"Option {slug}", "price": price, "currency": currency, "color": "blue"}
        cases.append(
            (
                f"o{n:02d}-{slug}",
                Case(
                    slug,
                    row,
                    frozenset(codes),
                    name=row["name"],
                    currency=(currency or "eur").lower(),
                    unit_amount=amount,
                    metadata={"color": "blue"},
                ),
            )
        )
    return cases


def run_options(dirty_table, pipeline_env, emulator, cases, **variables):
    table = dirty_table(cases)
    use_dirty_catalog(pipeline_env, table, **variables)
    result = pipeline_env.migrate()
    assert result.succeeded, result.report_markdown
    assert step_failures(result.run_ids) == []
    rows = table.rows()
    assert_quarantined(cases, rows, emulator, result.report)
    assert_good_rows_synced([(i, c) for i, c in cases if c.valid], rows, emulator.base_url)
    return result


def test_free_products_sync_when_allowed(dirty_table, pipeline_env, emulator):
    cases = option_cases(
        ("eur-free", "0", "eur", set(), 0),
        ("usd-free", "0.00", "usd", set(), 0),
        ("jpy-free", "0", "jpy", set(), 0),
        ("eur-0-30", "0.30", "eur", {"price_below_minimum"}, None),  # still below the minimum
        ("eur-plain", "12.50", "eur", set(), 1250),
    )
    run_options(dirty_table, pipeline_env, emulator, cases, STRIPE_SYNC_ALLOW_FREE_PRODUCTS="true")


def test_free_products_stay_out_by_default(dirty_table, pipeline_env, emulator):
    cases = option_cases(
        ("eur-free", "0", "eur", {"price_free_not_allowed"}, None),
        ("eur-plain", "12.50", "eur", set(), 1250),
    )
    run_options(dirty_table, pipeline_env, emulator, cases)


def test_round_prices_rounds_half_up_with_a_warning(dirty_table, pipeline_env, emulator):
    cases = option_cases(
        ("eur-12-505", "12.505", "eur", set(), 1251),
        ("eur-12-504", "12.504", "eur", set(), 1250),
        ("jpy-100-5", "100.5", "jpy", set(), 101),
        ("kwd-1-2345", "1.2345", "kwd", set(), 1235),
        ("isk-1-5", "1.5", "isk", set(), 200),
        ("eur-exact", "12.50", "EUR", set(), 1250),
        ("eur-abc", "abc", "eur", {"price_not_a_number"}, None),
    )
    result = run_options(
        dirty_table, pipeline_env, emulator, cases, STRIPE_SYNC_ROUND_PRICES="true"
    )
    for id_, case in cases:
        rounded = case.valid and case.slug != "eur-exact"
        assert mentions(result.report, id_, "price_rounded") == rounded, id_


def test_skip_validation_skips_business_rules_only(dirty_table, pipeline_env, emulator):
    cases = option_cases(
        ("eur-0-30", "0.30", "eur", set(), 30),
        ("eur-2000000", "2000000", "eur", set(), 200_000_000),
        ("eur-free", "0", "eur", set(), 0),
        ("eur-abc", "abc", "eur", {"price_not_a_number"}, None),
        ("eur-12-505", "12.505", "eur", {"price_too_precise"}, None),
        ("eur-negative", "-5", "eur", {"price_negative"}, None),
        ("xyz", "5.00", "xyz", {"currency_unsupported"}, None),
        ("eur-plain", "12.50", "eur", set(), 1250),
    )
    run_options(dirty_table, pipeline_env, emulator, cases, STRIPE_SYNC_SKIP_VALIDATION="true")


# ---------------------------------------------------------------- whole-batch checks


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param({"price": "N/A"}, id="every-price-N/A"),
        pytest.param({"name": None}, id="no-name-at-all"),
    ],
)
def test_a_batch_without_one_usable_column_fails_the_blocking_check_before_any_stripe_request(
    dirty_table, pipeline_env, emulator, broken
):
    cases = [
        (
            f"s{n}",
            Case("s", {"name": f"Structure {n}", "price": "5.00", "currency": "eur", **broken}),
        )
        for n in range(6)
    ]
    table = dirty_table(cases)
    use_dirty_catalog(pipeline_env, table)

    result = pipeline_env.migrate()

    assert not result.succeeded
    assert [e for e in emulator.requests() if e["method"] == "POST"] == []
    evaluations = check_evaluations(result.run_ids, "batch_structure")
    assert len(evaluations) == 1
    (evaluation,) = evaluations
    assert not evaluation.passed
    assert evaluation.blocking is True
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert stripe_state(emulator.base_url)[0] == []
    with dg.DagsterInstance.get() as instance:
        history = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("validated_products"), "batch_structure"), limit=5
        )
    assert [record.status.value for record in history] == ["FAILED"]


def test_four_unusable_rows_are_just_four_invalid_rows(dirty_table, pipeline_env, emulator):
    cases = [
        (
            f"t{n}",
            Case(
                "t",
                {"name": f"Tiny {n}", "price": "N/A", "currency": "eur"},
                frozenset({"price_not_a_number"}),
            ),
        )
        for n in range(4)
    ]
    table = dirty_table(cases)
    use_dirty_catalog(pipeline_env, table)

    result = pipeline_env.migrate()

    assert result.succeeded, result.report_markdown
    assert [e for e in emulator.requests() if e["method"] == "POST"] == []
    assert_quarantined(cases, table.rows(), emulator, result.report)
    assert [e.passed for e in check_evaluations(result.run_ids, "batch_structure")] == [True]


def test_a_structurally_broken_batch_blocks_itself_and_not_the_next_batchs_run(
    dirty_table, pipeline_env, emulator
):
    """The checks read the batches of their own run only: a run of a good batch is not
    blocked by a broken batch that an earlier run left behind."""
    broken = [
        (
            f"a{n}",
            Case(
                "a",
                {"name": f"Broken {n}", "price": "N/A", "currency": "eur"},
                frozenset({"price_not_a_number"}),
            ),
        )
        for n in range(6)
    ]
    good = [
        (f"b{n}", Case("b", {"name": f"Good {n}", "price": "5.00", "currency": "eur"}))
        for n in range(6)
    ]
    table = dirty_table(broken + good)
    use_dirty_catalog(pipeline_env, table, STRIPE_SYNC_BATCH_SIZE="6")

    result = pipeline_env.migrate(batches_per_run=1)

    first, second = result.new_batches
    assert result.failed_batches == [first]
    evaluations = check_evaluations(result.run_ids, "batch_structure")
    assert sorted((e.partition, e.passed) for e in evaluations) == [(first, False), (second, True)]
    products, _ = stripe_state(emulator.base_url)
    assert sorted(p["metadata"]["cms_id"] for p in products) == [id_ for id_, _ in good]


@pytest.mark.parametrize(
    ("rows", "invalid", "threshold", "warns"),
    [
        pytest.param(10, 2, None, True, id="2-of-10-warns"),
        pytest.param(20, 1, None, False, id="1-of-20-is-5%-not-more"),
        pytest.param(10, 2, "0.25", False, id="2-of-10-under-a-25%-threshold"),
        pytest.param(10, 0, None, False, id="none-invalid"),
    ],
)
def test_invalid_share_warns_without_blocking(
    dirty_table, pipeline_env, emulator, rows, invalid, threshold, warns
):
    cases = [
        (
            f"u{n:02d}",
            Case(
                "u",
                {
                    "name": f"Share {n}",
                    "price": "abc" if n < invalid else "5.00",
                    "currency": "eur",
                    "color": "blue",
                },
                frozenset({"price_not_a_number"}) if n < invalid else frozenset(),
                name=f"Share {n}",
                unit_amount=500,
                metadata={"color": "blue"},
            ),
        )
        for n in range(rows)
    ]
    table = dirty_table(cases)
    use_dirty_catalog(
        pipeline_env,
        table,
        **({"STRIPE_SYNC_INVALID_SHARE_THRESHOLD": threshold} if threshold else {}),
    )

    result = pipeline_env.migrate()

    assert result.succeeded, result.report_markdown  # not blocking: the good rows go on
    table_rows = table.rows()
    assert_quarantined(cases, table_rows, emulator, result.report)
    assert_good_rows_synced([(i, c) for i, c in cases if c.valid], table_rows, emulator.base_url)
    evaluations = check_evaluations(result.run_ids, "invalid_share")
    assert len(evaluations) == 1
    (evaluation,) = evaluations
    assert evaluation.passed is not warns
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert not evaluation.blocking
    with dg.DagsterInstance.get() as instance:
        history = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("validated_products"), "invalid_share"), limit=5
        )
    assert [record.status.value for record in history] == ["FAILED" if warns else "SUCCEEDED"]


def test_invalid_share_is_judged_per_batch_even_when_a_run_covers_several(
    dirty_table, pipeline_env, emulator
):
    """docs/how-it-works.md: warns when more than 5% "of a batch" is invalid. One run of
    three batches of 10: the first has 1 invalid row (10%), the others none (3.3% of the run)."""
    cases = [
        (
            f"w{n:02d}",
            Case(
                "w",
                {
                    "name": f"Batch share {n}",
                    "price": "abc" if n == 0 else "5.00",
                    "currency": "eur",
                    "color": "blue",
                },
                frozenset({"price_not_a_number"}) if n == 0 else frozenset(),
                name=f"Batch share {n}",
                unit_amount=500,
                metadata={"color": "blue"},
            ),
        )
        for n in range(30)
    ]
    table = dirty_table(cases)
    use_dirty_catalog(pipeline_env, table, STRIPE_SYNC_BATCH_SIZE="10")

    result = pipeline_env.migrate(batches_per_run=10)

    assert result.succeeded, result.report_markdown
    assert len(result.new_batches) == 3 and len(result.run_ids) == 1
    evaluations = check_evaluations(result.run_ids, "invalid_share")
    assert evaluations and not all(e.passed for e in evaluations)
    assert {e.severity for e in evaluations} == {dg.AssetCheckSeverity.WARN}
