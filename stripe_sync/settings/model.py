"""The settings model: every setting of stripe_sync declared once, typed, with its default,
what it does, the environment variables that set it and, for a secret, how the project file
may give it; and the rules that make a set of settings one that can run. Reading the
settings is `stripe_sync.settings.loader`'s."""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from stripe_sync.core.contract import DEFAULT_TABLE, SOURCE_COLUMNS
from stripe_sync.core.errors import ConfigError
from stripe_sync.core.identity import reserved_metadata_keys
from stripe_sync.core.mapping import (
    ID_FIELDS,
    PRICE_FIELDS,
    FieldMapping,
    PriceMapping,
    PricesModel,
    ValueRule,
    metadata_of,
)
from stripe_sync.core.money import SUPPORTED_CURRENCIES
from stripe_sync.core.report import table_cell
from stripe_sync.core.retry import CALL_TIMEOUT_S, RetryPolicy
from stripe_sync.core.throttle.client import DEFAULT_FRACTION
from stripe_sync.core.validation import ValidationRules

DEFAULT_DAGSTER_HOME = Path(".dagster_home")
# An asset owner as Dagster accepts one: an email address, or a team as `team:name`.
_OWNER = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,7}\b|team:.+")

# How a secret may be written in the project file.
KEY = "key"  # only as a reference to an environment variable
URL = "url"  # literally only without a password (sqlite:///catalog.db)


@dataclass(frozen=True)
class Secret:
    """A secret value and the environment variable it came from (None: a literal URL
    without a password). Its repr never shows the value."""

    value: str = field(repr=False)
    variable: str | None = None

    def __str__(self) -> str:
        return self.masked()

    def masked(self) -> str:
        """What may be shown: a URL without its password, else only where it came from."""
        try:
            return make_url(self.value).render_as_string(hide_password=True)
        except ArgumentError:
            return "[set]" if self.variable is None else f"[set from {self.variable}]"


def setting(default: Any, description: str, *variables: str, secret: str | None = None, **limits):
    """A field of the settings: its default, what it does, the environment variables that set
    it (the first one set wins), and for a secret how the project file may give it."""
    return Field(
        default,
        description=description,
        json_schema_extra={"variables": list(variables), "secret": secret},
        **limits,
    )


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class CatalogSettings(_Section):
    """Where the product catalog is: a database URL, or Supabase's REST API."""

    database_url: Secret | None = setting(
        None,
        "A direct SQL catalog: postgresql://… (e.g. Supabase's direct connection string) or "
        "sqlite:///path.db; wins over Supabase.",
        "CATALOG_DATABASE_URL",
        secret=URL,
    )
    supabase_url: str = setting(
        "", "The Supabase project's URL (REST API).", "SUPABASE_URL", "VITE_SUPABASE_URL"
    )
    supabase_service_role_key: Secret | None = setting(
        None, "Supabase's service_role key.", "SUPABASE_SERVICE_ROLE_KEY", secret=KEY
    )
    table: str = setting(
        DEFAULT_TABLE,
        "The catalog table or view (`schema.table` works); with `query`, the name the "
        "catalog's state is kept under.",
        "CATALOG_TABLE",
    )
    query: str | None = setting(
        None,
        "A SQL query as the catalog instead of the table (a model, e.g. a join), read in "
        "keyset pages; SQL catalogs only (on Supabase make it a view). `table` still names "
        "the catalog's state.",
        "STRIPE_SYNC_CATALOG_QUERY",
    )
    where: str | None = setting(
        None,
        "Which rows are part of the catalog: an SQL condition (kind = 'physical'), or "
        "PostgREST filters on Supabase (kind=eq.physical&stock=gt.0).",
        "STRIPE_SYNC_CATALOG_WHERE",
    )
    columns: dict[str, str | None] = setting(
        {},
        "Pipeline field -> catalog column (id, name, description, price, currency, images, "
        "active, updated_at); a field left out is the column of its name, null is no column "
        "(optional fields only). JSON in the variable.",
        "STRIPE_SYNC_CATALOG_COLUMNS",
    )
    price_unit: Literal["major", "minor"] = setting(
        FieldMapping.price_unit,
        "The unit of prices: major (12.50) or minor (1250: cents, yen, fils; whole numbers only).",
        "STRIPE_SYNC_PRICE_UNIT",
    )
    currency: str | None = setting(
        None,
        "The currency of every row, when no currency column is mapped.",
        "STRIPE_SYNC_CATALOG_CURRENCY",
    )
    active: ValueRule | None = setting(
        None,
        "Which rows are active: a boolean column, or {column, values} (the values that mean "
        "active); default the column `active`.",
        "STRIPE_SYNC_CATALOG_ACTIVE",
    )
    skip: ValueRule | None = setting(
        None,
        "Rows that must not be in Stripe yet, {column, values} (e.g. drafts): never created, "
        "and removed like a deleted row when synced before.",
        "STRIPE_SYNC_CATALOG_SKIP",
    )
    deleted: ValueRule | None = setting(
        None,
        "A soft-delete column: set (not NULL) means deleted; or {column, values}.",
        "STRIPE_SYNC_CATALOG_DELETED",
    )
    metadata: dict[str, str] = setting(
        {},
        "Stripe metadata key -> catalog column. JSON in the variable.",
        "STRIPE_SYNC_CATALOG_METADATA",
    )
    metadata_columns: tuple[str, ...] = setting(
        (),
        "Catalog columns copied into the Stripe product's metadata under their own names (a "
        "list; comma-separated in the variable).",
        "STRIPE_SYNC_METADATA_COLUMNS",
    )
    timeout_s: float = setting(
        CALL_TIMEOUT_S,
        "Seconds a catalog, state or throttle-store request (a PostgREST request, a "
        "connection, an SQL statement on PostgreSQL) may take.",
        "STRIPE_SYNC_CATALOG_TIMEOUT_S",
        gt=0,
    )
    retry_attempts: int | None = setting(
        None,
        "Attempts per call to the catalog, the state or the throttle's store, the first one "
        "included (unset: as many as fit in retry_deadline_s, so a failover is waited out).",
        "STRIPE_SYNC_CATALOG_RETRY_ATTEMPTS",
        ge=1,
    )
    retry_deadline_s: float = setting(
        120.0,
        "No new attempt of a call to the catalog, the state or the throttle's store after "
        "this many seconds: longer, the database is down (a batch's finished Stripe work is "
        "then kept for the next run).",
        "STRIPE_SYNC_CATALOG_RETRY_DEADLINE_S",
        gt=0,
    )
    retry_base_delay_s: float = setting(
        0.5,
        "The first wait between two attempts; it doubles (with jitter) up to retry_max_delay_s.",
        "STRIPE_SYNC_CATALOG_RETRY_BASE_DELAY_S",
        gt=0,
    )
    retry_max_delay_s: float = setting(
        10.0,
        "The longest wait between two attempts.",
        "STRIPE_SYNC_CATALOG_RETRY_MAX_DELAY_S",
        gt=0,
    )

    @field_validator("active", "skip", "deleted", mode="before")
    @classmethod
    def _column_alone(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"column": value}
        if isinstance(value, dict) and isinstance(value.get("values"), str | int | bool):
            return {**value, "values": [value["values"]]}
        return value

    @field_validator("currency", "price_unit", mode="before")
    @classmethod
    def _lowercase(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("query", "where", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    def mapping(self, *, prices_elsewhere: bool = False) -> FieldMapping:
        """The field mapping these settings describe (`prices_elsewhere`: a prices model
        holds the prices); a ConfigError names a key that doesn't fit. Use
        `Settings.catalog_mapping()`, which knows."""
        fields = [*SOURCE_COLUMNS, *ID_FIELDS]
        unknown = sorted(set(self.columns) - set(fields))
        if unknown:
            raise ConfigError(
                f"catalog.columns maps {unknown[0]!r}, which is not a field: use "
                f"{', '.join(fields)}{suggestion(unknown[0], fields)}."
            )
        if self.currency is not None and self.columns.get("currency"):
            raise ConfigError(
                "catalog.currency and catalog.columns.currency are both set: keep the column, "
                "or the one currency of every row."
            )
        if self.currency is not None and self.currency not in SUPPORTED_CURRENCIES:
            raise ConfigError(
                f"catalog.currency must be a currency Stripe supports, not {self.currency!r}."
            )
        if self.active is not None and "active" in self.columns:
            raise ConfigError("catalog.active and catalog.columns.active are both set: keep one.")
        if self.skip is not None and not self.skip.values:
            raise ConfigError("catalog.skip needs values: {column: status, values: [draft]}.")
        metadata = metadata_of(self.metadata_columns, self.metadata)
        reserved = sorted(set(metadata) & set(reserved_metadata_keys()))
        if reserved:
            raise ConfigError(
                f"catalog.metadata uses the key {reserved[0]!r}, which the pipeline owns: "
                "choose another key."
            )
        try:
            return FieldMapping(
                columns=self.columns,
                price_unit=self.price_unit,
                currency=self.currency,
                active=self.active,
                skip=self.skip,
                deleted=self.deleted,
                metadata=metadata,
                prices_elsewhere=prices_elsewhere,
            )
        except ValueError as error:
            raise ConfigError(f"catalog.columns: {error}.") from None


class PricesSettings(_Section):
    """Several prices per product: a prices table (or view, or query) of the catalog's
    database. Without `table` or `query`, each product has the one price of its row."""

    table: str | None = setting(
        None,
        "The prices table or view (`schema.table` works): one row per price, each naming its "
        "product.",
        "STRIPE_SYNC_PRICES_TABLE",
    )
    query: str | None = setting(
        None,
        "A SQL query as the prices model instead of the table; SQL catalogs only (on Supabase "
        "make it a view).",
        "STRIPE_SYNC_PRICES_QUERY",
    )
    where: str | None = setting(
        None,
        "Which price rows count: an SQL condition, or PostgREST filters on Supabase.",
        "STRIPE_SYNC_PRICES_WHERE",
    )
    columns: dict[str, str | None] = setting(
        {},
        "Price field -> column (id, product_id, amount, currency; optional: interval, "
        "interval_count, active, default, nickname); a required field left out is the column "
        "of its name, an optional one has no column. JSON in the variable.",
        "STRIPE_SYNC_PRICES_COLUMNS",
    )
    price_unit: Literal["major", "minor"] = setting(
        PriceMapping.price_unit,
        "The unit of the amounts: major (12.50) or minor (1250; whole numbers only).",
        "STRIPE_SYNC_PRICES_PRICE_UNIT",
    )

    @field_validator("price_unit", mode="before")
    @classmethod
    def _lowercase(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("table", "query", "where", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def configured(self) -> bool:
        return self.table is not None or self.query is not None

    def model(self) -> PricesModel | None:
        """The prices model these settings describe (None: one price per product row); a
        ConfigError names a key that doesn't fit."""
        if not self.configured:
            if self.columns or self.where:
                raise ConfigError(
                    "prices.columns or prices.where is set without prices.table or "
                    "prices.query: name the prices table."
                )
            return None
        if self.table is not None and self.query is not None:
            raise ConfigError("prices.table and prices.query are both set: keep one.")
        unknown = sorted(set(self.columns) - set(PRICE_FIELDS))
        if unknown:
            raise ConfigError(
                f"prices.columns maps {unknown[0]!r}, which is not a price field: use "
                f"{', '.join(PRICE_FIELDS)}{suggestion(unknown[0], list(PRICE_FIELDS))}."
            )
        try:
            mapping = PriceMapping(columns=self.columns, price_unit=self.price_unit)
        except ValueError as error:
            raise ConfigError(f"prices.columns: {error}.") from None
        return PricesModel(mapping, table=self.table, query=self.query, where=self.where)


class StateSettings(_Section):
    """Where the pipeline keeps what it knows between runs (sync state, checkpoints, outcome
    ledgers, backups, batch frames)."""

    url: Secret | None = setting(
        None,
        "A database of its own for the state: postgresql://… or sqlite:///path.db (default: "
        "the catalog's database, tables stripe_sync_*).",
        "STRIPE_SYNC_STATE_URL",
        secret=URL,
    )


class StripeSettings(_Section):
    """The Stripe account and how each call to it is made."""

    secret_key: Secret | None = setting(
        None,
        "A test-mode key (sk_test_…/rk_test_…); live keys need allow_live_mode.",
        "STRIPE_SECRET_KEY",
        secret=KEY,
    )
    api_base: str = setting(
        "", "Another Stripe API address, e.g. the emulator's (default Stripe's).", "STRIPE_API_BASE"
    )
    allow_live_mode: bool = setting(
        False, "Accept a live-mode key (or --allow-live-mode).", "STRIPE_ALLOW_LIVE_MODE"
    )
    timeout_s: float = setting(
        CALL_TIMEOUT_S, "Seconds a request may take.", "STRIPE_TIMEOUT_S", gt=0
    )
    max_attempts: int = setting(
        RetryPolicy.attempts,
        "Attempts per call, the first one included.",
        "STRIPE_MAX_ATTEMPTS",
        ge=1,
    )
    deadline_s: float = setting(
        RetryPolicy.deadline_s,
        "No new attempt of a call after this many seconds.",
        "STRIPE_DEADLINE_S",
        gt=0,
    )
    max_in_flight: int = setting(
        0,
        "Products in progress at once; 0 sizes it from the rate so latency never caps it.",
        "STRIPE_SYNC_MAX_IN_FLIGHT",
        ge=0,
    )


class ThrottleSettings(_Section):
    """The request budget every process calling Stripe with the same account shares."""

    url: Secret | None = setting(
        None,
        "Where the budget lives: postgresql://… or redis://… across machines (default: the "
        "state's database when it is PostgreSQL, else a SQLite file in paths.state_dir).",
        "STRIPE_SYNC_THROTTLE_URL",
        secret=URL,
    )
    fraction: float = setting(
        DEFAULT_FRACTION,
        "The share of Stripe's rate limits used.",
        "STRIPE_SYNC_THROTTLE_FRACTION",
        gt=0,
        le=1,
    )
    global_rate: float | None = setting(
        None,
        "The account's global rate limit in requests/s, when Stripe has raised it (unset: "
        "Stripe's default for the key's mode, 25 in test mode and 100 in live mode).",
        "STRIPE_SYNC_THROTTLE_GLOBAL_RATE",
        gt=0,
    )
    endpoint_rate: float | None = setting(
        None,
        "The account's rate limit per endpoint in requests/s, when Stripe has raised it "
        "(unset: Stripe's default, 25).",
        "STRIPE_SYNC_THROTTLE_ENDPOINT_RATE",
        gt=0,
    )


class SyncSettings(_Section):
    """How the catalog is cut into batches and what a sync does with deleted rows."""

    batch_size: int = setting(
        1_000, "Rows per new batch (or --batch-size).", "STRIPE_SYNC_BATCH_SIZE", ge=1
    )
    mirror: bool = setting(
        False,
        "Archive the Stripe products of rows deleted from the catalog (or --mirror); off: "
        "report them only.",
        "STRIPE_SYNC_MIRROR",
    )


class AdoptSettings(_Section):
    """How a sync finds the products an account already holds for catalog rows that the
    pipeline has no state for (docs/adopting.md)."""

    metadata_key: str | None = setting(
        None,
        "The Stripe product metadata key that holds a row's catalog id (e.g. `supabase_id`, "
        "the original tool's): a sync lists the account's products to find them, and adopts "
        "each instead of creating it. Unset: no listing.",
        "STRIPE_SYNC_ADOPT_METADATA_KEY",
        min_length=1,
        max_length=40,
    )


class ValidationSettings(_Section):
    """The row rules' options (docs/how-it-works.md, "Validation rules")."""

    default_currency: str = setting(
        ValidationRules.default_currency,
        "The currency of rows without one.",
        "STRIPE_SYNC_DEFAULT_CURRENCY",
    )
    round_prices: bool = setting(
        ValidationRules.round_prices,
        "Round prices with too many decimals half-up instead of refusing them.",
        "STRIPE_SYNC_ROUND_PRICES",
    )
    allow_free_products: bool = setting(
        ValidationRules.allow_free_products,
        "A price of 0 is a free product, not an error.",
        "STRIPE_SYNC_ALLOW_FREE_PRODUCTS",
    )
    skip_validation: bool = setting(
        ValidationRules.skip_validation,
        "Skip the business rules: minimum, maximum, free (or --skip-validation).",
        "STRIPE_SYNC_SKIP_VALIDATION",
    )
    max_price_eur: Decimal = setting(
        ValidationRules.max_price_eur,
        "The maximum price, in euros.",
        "STRIPE_SYNC_MAX_PRICE_EUR",
        ge=0,
    )
    invalid_share_threshold: float = setting(
        0.05,
        "Share of invalid rows in a batch above which the invalid_share check warns.",
        "STRIPE_SYNC_INVALID_SHARE_THRESHOLD",
        ge=0,
        le=1,
    )


class AutomationSettings(_Section):
    """The sensors and the reconcile schedule."""

    status: Literal["running", "stopped"] = setting(
        "stopped",
        "How the catalog_changes and failed_batch_retry sensors and the reconcile schedule "
        "start (the UI can change it later).",
        "STRIPE_SYNC_AUTOMATION",
    )
    reconcile_cron: str = setting(
        "0 * * * *", "The reconcile schedule's cron, UTC.", "STRIPE_SYNC_RECONCILE_CRON"
    )
    removal_scan_minutes: float = setting(
        15.0,
        "How often catalog_changes scans every id for deleted rows.",
        "STRIPE_SYNC_REMOVAL_SCAN_MINUTES",
        ge=0,
    )
    retry_base_minutes: float = setting(
        5.0,
        "failed_batch_retry's first wait; each later one is twice as long.",
        "STRIPE_SYNC_RETRY_BASE_MINUTES",
        ge=0,
    )
    retry_max_attempts: int = setting(
        3,
        "Retries of a failed batch before failed_batch_retry gives up on it.",
        "STRIPE_SYNC_RETRY_MAX_ATTEMPTS",
        ge=0,
    )

    @field_validator("status", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


class ExecutionSettings(_Section):
    """Where the steps of a run execute (Dagster's executor)."""

    executor: Literal["default", "celery"] = setting(
        "default",
        "default: the steps in the run worker (Dagster's multiprocess executor); celery: each "
        "step as a task for Celery workers on any machine (dagster-celery, the extra `celery`).",
        "STRIPE_SYNC_EXECUTOR",
    )
    celery_broker: Secret | None = setting(
        None,
        "The Celery broker, e.g. redis://host:6379/0 (with executor celery).",
        "STRIPE_SYNC_CELERY_BROKER",
        secret=URL,
    )
    celery_backend: Secret | None = setting(
        None,
        "The Celery result backend, e.g. redis://host:6379/1 (default: the broker).",
        "STRIPE_SYNC_CELERY_BACKEND",
        secret=URL,
    )
    celery_queue: str = setting(
        "dagster",
        "The Celery queue of the pipeline's tasks (start its workers with -Q and this name).",
        "STRIPE_SYNC_CELERY_QUEUE",
    )

    @field_validator("executor", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


class AssetSettings(_Section):
    """How the pipeline's assets are presented in Dagster."""

    owners: tuple[str, ...] = setting(
        (),
        "Who owns the pipeline's assets in Dagster: emails (ana@example.com) or teams "
        "(team:data), comma-separated in the variable.",
        "STRIPE_SYNC_ASSET_OWNERS",
    )

    @field_validator("owners", mode="before")
    @classmethod
    def _one_as_text(cls, value: Any) -> Any:
        if isinstance(value, str):  # `owners: team:data` in the file
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("owners")
    @classmethod
    def _owners_dagster_takes(cls, owners: tuple[str, ...]) -> tuple[str, ...]:
        for owner in owners:
            if not _OWNER.fullmatch(owner):
                raise ConfigError(
                    f"assets.owners holds {owner!r}, which is not an owner Dagster takes: "
                    "write an email (ana@example.com) or a team (team:data)."
                )
        return owners


class PathSettings(_Section):
    """Where things are kept on disk."""

    dagster_home: Path | None = setting(
        None,
        "The Dagster instance (stripe-sync uses ./.dagster_home when unset).",
        "DAGSTER_HOME",
    )
    state_dir: Path | None = setting(
        None,
        "Local files, none of which a run depends on: the throttle's SQLite file when the "
        "state is not in PostgreSQL; the state of versions before the state database, "
        "imported once (default: the Dagster home's stripe_sync).",
        "STRIPE_SYNC_STATE_DIR",
    )
    backups_dir: Path | None = setting(
        None,
        "Where versions before the state database kept backups, imported once (default: the "
        "state directory's backups).",
        "STRIPE_SYNC_BACKUPS_DIR",
    )
    reports_dir: Path = setting(Path("reports"), "Where reports go.", "STRIPE_SYNC_REPORTS_DIR")


class Settings(BaseModel):
    """All settings of stripe_sync; `load_settings()` makes one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    catalog: CatalogSettings = CatalogSettings()
    prices: PricesSettings = PricesSettings()
    state: StateSettings = StateSettings()
    stripe: StripeSettings = StripeSettings()
    throttle: ThrottleSettings = ThrottleSettings()
    sync: SyncSettings = SyncSettings()
    adopt: AdoptSettings = AdoptSettings()
    validation: ValidationSettings = ValidationSettings()
    automation: AutomationSettings = AutomationSettings()
    execution: ExecutionSettings = ExecutionSettings()
    assets: AssetSettings = AssetSettings()
    paths: PathSettings = PathSettings()

    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _mapping_fits(self) -> Settings:
        self.catalog_mapping()  # a ConfigError naming the key, before anything runs
        self.prices.model()
        return self

    def catalog_mapping(self) -> FieldMapping:
        """The catalog's field mapping: without a price of its own when a prices model holds
        the prices."""
        return self.catalog.mapping(prices_elsewhere=self.prices.configured)

    @property
    def dagster_home(self) -> Path:
        """The Dagster instance's home, absolute."""
        return (self.paths.dagster_home or DEFAULT_DAGSTER_HOME).expanduser().absolute()

    @property
    def state_dir(self) -> Path:
        """The pipeline's local files: `paths.state_dir`, else the Dagster home's stripe_sync."""
        if self.paths.state_dir is not None:
            return self.paths.state_dir.expanduser().absolute()
        return self.dagster_home / "stripe_sync"

    @property
    def backups_dir(self) -> Path:
        if self.paths.backups_dir is not None:
            return self.paths.backups_dir.expanduser().absolute()
        return self.state_dir / "backups"

    def source(self, key: str) -> str:
        """Where the value of `key` (e.g. "sync.batch_size") came from."""
        return self._sources.get(key, "default")

    def where(self, key: str) -> str:
        """How to name `key` in a sentence about its value: the variable or flag that set it,
        else the key in the project file."""
        source = self.source(key)
        if source.startswith(("env ", ".env ")):
            return source.split(" ", 1)[1]
        if source.startswith("flag "):
            return source.removeprefix("flag ")
        return key

    def overridden(self, values: Mapping[str, Any], source: str) -> Settings:
        """A copy with some keys set (None leaves a key alone), their source `source`."""
        current = {key: self.value(key) for key, _info in setting_fields()}
        sources = dict(self._sources)
        for key, value in values.items():
            if value is not None:
                current[key], sources[key] = value, source
        return validated(current, sources)

    def with_secrets(self, values: Mapping[str, str]) -> Settings:
        """A copy whose secrets (key -> value; "" for none) are these values, each still named
        by the variable it came from: how a Dagster resource hands over the secrets Dagster
        resolved from its `EnvVar`s."""
        sections: dict[str, dict[str, Secret | None]] = {}
        for key, value in values.items():
            section, name = key.split(".")
            variable = getattr(self.value(key), "variable", None)
            sections.setdefault(section, {})[name] = Secret(value, variable) if value else None
        return self.model_copy(
            update={
                section: getattr(self, section).model_copy(update=update)
                for section, update in sections.items()
            }
        )

    def rows(self) -> list[tuple[str, str, str]]:
        """(key, value as it may be shown, source) of every setting, secrets masked."""
        rows = []
        for key, _info in setting_fields():
            value = self.value(key)
            shown = "" if value is None else _shown(value)
            rows.append((key, shown, self.source(key)))
        return rows

    def table(self) -> str:
        """`rows()` as a Markdown table: what `stripe-sync config` prints and the UI shows."""
        return "\n".join(
            ["| setting | value | from |", "| --- | --- | --- |"]
            + [
                f"| {key} | {table_cell(value)} | {table_cell(src)} |"
                for key, value, src in self.rows()
            ]
        )

    def value(self, key: str) -> Any:
        """The value of `key` (e.g. "sync.batch_size")."""
        section, name = key.split(".")
        return getattr(getattr(self, section), name)


def setting_fields() -> Iterator[tuple[str, FieldInfo]]:
    """Every setting as (key, field), in the model's order."""
    for section, section_field in Settings.model_fields.items():
        for name, info in section_field.annotation.model_fields.items():
            yield f"{section}.{name}", info


def variables_of(info: FieldInfo) -> list[str]:
    return info.json_schema_extra["variables"]


def secret_kind(info: FieldInfo) -> str | None:
    return info.json_schema_extra["secret"]


def suggestion(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def validated(values: dict[str, Any], sources: dict[str, str]) -> Settings:
    nested: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        section, name = key.split(".")
        nested.setdefault(section, {})[name] = value
    try:
        settings = Settings(**nested)
    except ValidationError as error:
        raise _config_error(error, values, sources) from None
    settings._sources.update(sources)
    return settings


def _config_error(error: ValidationError, values: dict[str, Any], sources: dict[str, str]):
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"][:2])
    source = sources.get(key, "default")
    if source.startswith(("env ", ".env ", "flag ")):
        where = source.split(" ", 1)[1]
    else:
        where = f"{key} in {source.split(' ', 1)[0]}"
    info = dict(setting_fields()).get(key)
    expected = _expected(info) if info is not None else first["msg"]
    return ConfigError(f"{where} must be {expected}, not {values.get(key, first['input'])!r}.")


def _expected(info: FieldInfo) -> str:
    """What a field takes, in words: "a whole number of at least 1", "true or false"."""
    annotation = info.annotation
    limits = {type(m).__name__: m for m in info.metadata}
    bounds = []
    for name, word in (("Ge", "at least"), ("Gt", "above"), ("Le", "at most"), ("Lt", "below")):
        if name in limits:
            bounds.append(f"{word} {getattr(limits[name], name.lower())}")
    if annotation is bool:
        return "true or false"
    if typing.get_origin(annotation) is dict:
        return "a mapping of names to columns"
    if is_rule(info):
        return "a column, or {column: ..., values: [...]}"
    if typing.get_origin(annotation) is Literal:
        return " or ".join(typing.get_args(annotation))
    if annotation is int:
        noun = "a whole number"
    elif annotation in (float, Decimal):
        noun = "a number"
    else:
        noun = "text"
    if not bounds:
        return noun
    return f"{noun} {'of ' if bounds[0].startswith('at ') else ''}{' and '.join(bounds)}"


def _shown(value: Any) -> str:
    if isinstance(value, Secret):
        return value.masked()
    if isinstance(value, tuple):
        return ", ".join(value)
    if isinstance(value, dict):
        return ", ".join(f"{key}: {column}" for key, column in value.items())
    if isinstance(value, ValueRule):
        return value.describe()
    return str(value)


def is_rule(info: FieldInfo) -> bool:
    return ValueRule in typing.get_args(info.annotation)
