"""Resources: the catalog and its state, Stripe, the pipeline's settings, built from `Settings`.

Secrets reach Dagster as `dg.EnvVar`s: the UI and the run storage show the variable's name,
never its value.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import pickle
import zlib
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field, PrivateAttr

from stripe_sync.backends import open_catalog, open_state
from stripe_sync.core.contract import Catalog
from stripe_sync.core.errors import ConfigError
from stripe_sync.core.mapping import (
    FieldMapping,
    PriceMapping,
    PricesModel,
    ValueRule,
    value_text,
)
from stripe_sync.core.progress import NoProgress, RunProgress
from stripe_sync.core.retry import RetryPolicy, RetryStats
from stripe_sync.core.state import TrackedCatalog
from stripe_sync.core.stripe_api import StripeApi, key_mode
from stripe_sync.core.throttle import open_throttle
from stripe_sync.core.validation import ValidationRules
from stripe_sync.settings.model import Secret, Settings


class CatalogMapping(dg.Config):
    """How the catalog's columns map onto the pipeline's fields (settings `catalog.columns`,
    `price_unit`, `currency`, `active`, `skip`, `deleted`, `metadata`); values compare as text."""

    columns: dict[str, str] = Field(
        default_factory=dict, description='Pipeline field -> column; "" for no column.'
    )
    price_unit: str = "major"
    currency: str = ""
    active_column: str = ""
    active_values: list[str] = Field(default_factory=list)
    skip_column: str = ""
    skip_values: list[str] = Field(default_factory=list)
    deleted_column: str = ""
    deleted_values: list[str] = Field(default_factory=list)
    metadata: dict[str, str] = Field(
        default_factory=dict, description="Stripe metadata key -> column."
    )

    @classmethod
    def of(cls, mapping: FieldMapping) -> CatalogMapping:
        def rule(name: str) -> dict[str, object]:
            found = getattr(mapping, name)
            return {
                f"{name}_column": found.column if found else "",
                # As SQL and PostgREST spell them: `true`, which the rows' values match.
                f"{name}_values": [value_text(value) for value in found.values] if found else [],
            }

        return cls(
            columns={name: column or "" for name, column in mapping.columns.items()},
            price_unit=mapping.price_unit,
            currency=mapping.currency or "",
            metadata=dict(mapping.metadata),
            **rule("active"),
            **rule("skip"),
            **rule("deleted"),
        )

    def field_mapping(self, *, prices_elsewhere: bool = False) -> FieldMapping:
        def rule(name: str) -> ValueRule | None:
            column = getattr(self, f"{name}_column")
            return ValueRule(column, tuple(getattr(self, f"{name}_values"))) if column else None

        try:
            return FieldMapping(
                columns={name: column or None for name, column in self.columns.items()},
                price_unit=self.price_unit,
                currency=self.currency or None,
                active=rule("active"),
                skip=rule("skip"),
                deleted=rule("deleted"),
                metadata=self.metadata,
                prices_elsewhere=prices_elsewhere,
            )
        except ValueError as error:
            raise ConfigError(f"catalog.columns: {error}.") from None


class PricesConfig(dg.Config):
    """Where the prices are when a product has several (settings `prices`): a table or view,
    or a SQL query, of the catalog's database; empty: one price per product row."""

    table: str = ""
    query: str = ""
    where: str = ""
    columns: dict[str, str] = Field(
        default_factory=dict, description='Price field -> column; "" for no column.'
    )
    price_unit: str = "major"

    @classmethod
    def of(cls, model: PricesModel | None) -> PricesConfig:
        if model is None:
            return cls()
        return cls(
            table=model.table or "",
            query=model.query or "",
            where=model.where or "",
            columns={name: column or "" for name, column in model.mapping.columns.items()},
            price_unit=model.mapping.price_unit,
        )

    def model(self) -> PricesModel | None:
        if not (self.table or self.query):
            return None
        try:
            mapping = PriceMapping(
                columns={name: column or None for name, column in self.columns.items()},
                price_unit=self.price_unit,
            )
        except ValueError as error:
            raise ConfigError(f"prices.columns: {error}.") from None
        return PricesModel(
            mapping, table=self.table or None, query=self.query or None, where=self.where or None
        )


class CatalogResource(dg.ConfigurableResource):
    """The product catalog (direct SQL when `database_url` is set, else Supabase's PostgREST)
    and the pipeline's state: in the catalog's database, or in the one at `state_url`."""

    # Secrets (a URL may hold a password) stay out of reprs and error messages.
    database_url: str = Field(default="", repr=False)
    supabase_url: str = ""
    supabase_service_role_key: str = Field(default="", repr=False)
    table: str = "products"
    query: str = Field(default="", description="A SQL query as the catalog, instead of the table.")
    where: str = Field(default="", description="Which rows are part of the catalog.")
    mapping: CatalogMapping = Field(default_factory=CatalogMapping)
    prices: PricesConfig = Field(default_factory=PricesConfig)
    state_url: str = Field(
        default="",
        repr=False,
        description="A database of its own for the state (default: the catalog's).",
    )
    timeout_s: float = 30.0  # per request, connection or statement
    retry_attempts: int | None = None  # per call, the first one included; None: the deadline
    retry_deadline_s: float = 120.0  # per call, all attempts: longer is an outage
    retry_base_delay_s: float = 0.5
    retry_max_delay_s: float = 10.0

    def retry_policy(self, *, deadline_s: float | None = None) -> RetryPolicy:
        """How every database the pipeline talks to is retried: the catalog, the state and the
        throttle's store (`deadline_s` shortens the deadline)."""
        return RetryPolicy(
            attempts=self.retry_attempts,
            deadline_s=min(self.retry_deadline_s, deadline_s or self.retry_deadline_s),
            base_delay_s=self.retry_base_delay_s,
            max_delay_s=self.retry_max_delay_s,
        )

    def open(
        self,
        *,
        deadline_s: float | None = None,
        on_waiting: Callable[[str], None] | None = None,
    ) -> TrackedCatalog:
        """The catalog with its state store, retried by one policy (`deadline_s` shortens its
        deadline) and counted in one `RetryStats` (`on_waiting`: told once when a call waits
        for a database that does not answer); close it after use."""
        retry = self.retry_policy(deadline_s=deadline_s)
        stats = RetryStats(on_waiting=on_waiting)
        catalog = self._open_catalog(retry, stats)
        try:
            state = open_state(
                catalog, self.state_url or None, timeout_s=self.timeout_s, retry=retry, stats=stats
            )
            return TrackedCatalog(catalog, state, stats)
        except BaseException:
            catalog.close()
            raise

    def _open_catalog(self, retry: RetryPolicy, stats: RetryStats) -> Catalog:
        return open_catalog(
            database_url=self.database_url or None,
            supabase_url=self.supabase_url or None,
            supabase_key=self.supabase_service_role_key or None,
            table=self.table,
            mapping=self.field_mapping(),
            prices=self.prices.model(),
            query=self.query or None,
            where=self.where or None,
            timeout_s=self.timeout_s,
            retry=retry,
            stats=stats,
        )

    def field_mapping(self) -> FieldMapping:
        """The catalog's field mapping (without a price of its own with a prices model)."""
        return self.mapping.field_mapping(prices_elsewhere=self.prices.model() is not None)

    @contextlib.contextmanager
    def opened(
        self,
        *,
        deadline_s: float | None = None,
        on_waiting: Callable[[str], None] | None = None,
    ) -> Iterator[TrackedCatalog]:
        source = self.open(deadline_s=deadline_s, on_waiting=on_waiting)
        try:
            yield source
        finally:
            source.close()


class StripeResource(dg.ConfigurableResource):
    """Stripe through stripe-python's StripeClient; `api_base` points it at an emulator."""

    # The throttle's store is a database like the catalog's: retried by the same policy.
    catalog: CatalogResource

    secret_key: str = Field(default="", repr=False)
    api_base: str = ""
    allow_live_mode: bool = False
    timeout_s: float = 30.0  # per request
    max_attempts: int = 6  # per call, the first one included
    deadline_s: float = 300.0  # per call, all attempts
    # Where every process shares the rate budget: postgresql://… or redis://… across
    # machines; "" is a SQLite file in `state_dir` (one machine; see `throttle_store`).
    throttle_url: str = Field(default="", repr=False)
    throttle_setting: str = "STRIPE_SYNC_THROTTLE_URL"  # where throttle_url came from
    throttle_fraction: float = 0.8  # of Stripe's limits for the key's mode
    # The account's limits when Stripe raised them; None: its defaults for the key's mode.
    throttle_global_rate: float | None = None
    throttle_endpoint_rate: float | None = None
    state_dir: str = ".dagster_home/stripe_sync"
    # Requests in flight; 0 sizes it so latency never caps throughput (rate x latency).
    max_in_flight: int = 0
    expected_latency_s: float = 0.3

    def api(self, retries: RetryStats | None = None) -> StripeApi:
        """The API, its throttle's store retried as the catalog is (counted in `retries`)."""
        mode = key_mode(self.secret_key) if self.secret_key else "test"
        store = self.throttle_url or f"sqlite:///{Path(self.state_dir, 'stripe_throttle.sqlite')}"
        throttle = open_throttle(
            store,
            mode=mode,
            # A hash of the key names the account's budget: never the key itself.
            namespace=hashlib.sha256(self.secret_key.encode()).hexdigest()[:16],
            fraction=self.throttle_fraction,
            global_rate=self.throttle_global_rate,
            endpoint_rate=self.throttle_endpoint_rate,
            setting=self.throttle_setting,
            timeout_s=self.catalog.timeout_s,
            retry=self.catalog.retry_policy(),
            stats=retries,
        )
        return StripeApi(
            self.secret_key,
            retry=RetryPolicy(attempts=self.max_attempts, deadline_s=self.deadline_s),
            throttle=throttle,
            api_base=self.api_base or None,
            timeout_s=self.timeout_s,
            allow_live_mode=self.allow_live_mode,
        )

    @contextlib.contextmanager
    def opened(self, retries: RetryStats | None = None) -> Iterator[StripeApi]:
        api = self.api(retries)
        try:
            yield api
        finally:
            api.close()

    def in_flight(self, api: StripeApi) -> int:
        """Products in progress at once: enough that latency never caps the throttled rate."""
        return self.max_in_flight or max(2, math.ceil(api.rate * self.expected_latency_s * 2))


class PipelineSettings(dg.ConfigurableResource):
    """How the pipeline batches, validates and reports (the settings' sync, validation and
    paths sections)."""

    batch_size: int = 1_000
    default_currency: str = "eur"
    price_unit: str = "major"  # of the catalog's prices: major (12.50) or minor (1250)
    prices_unit: str = "major"  # of the prices model's amounts
    reports_dir: str = "reports"
    round_prices: bool = False
    allow_free_products: bool = False
    skip_validation: bool = False  # business rules only; what Stripe would reject always counts
    max_price_eur: str = "1000000"  # a decimal string: money is never a float
    invalid_share_threshold: float = 0.05
    # Archive the Stripe products of rows deleted from the catalog (else only report them).
    mirror: bool = False
    # The product metadata key holding a row's catalog id, to adopt existing products by.
    adopt_metadata_key: str | None = None

    def validation_rules(self, *, skip_validation: bool | None = None) -> ValidationRules:
        """The row rules; `skip_validation` (a run's choice) over the setting."""
        return ValidationRules(
            default_currency=self.default_currency,
            price_unit=self.price_unit,
            prices_unit=self.prices_unit,
            round_prices=self.round_prices,
            allow_free_products=self.allow_free_products,
            skip_validation=self.skip_validation if skip_validation is None else skip_validation,
            max_price_eur=Decimal(self.max_price_eur),
        )


class AutomationResource(dg.ConfigurableResource):
    """How the change sensor looks for removed rows and the failed-batch sensor retries."""

    removal_scan_minutes: float = 15.0  # a full id scan for deleted rows, at most this often
    retry_base_minutes: float = 5.0  # the wait before the first retry; doubled for each next
    retry_max_attempts: int = 3  # retries of a failed batch before the sensor gives up


class BatchFrameIOManager(dg.ConfigurableIOManager):
    """Stores an asset's DataFrame per batch partition in the state database, so the steps of
    a run may run on different machines; a run over several batches writes one frame per
    batch (split on the `batch` column) and a reader gets the batches it asks for. A step
    that reads what an earlier step of its run wrote in this process reads it from memory:
    the same bytes, without a round trip to the database."""

    catalog: CatalogResource
    # (run id, asset, batch) -> the frame as stored; Dagster makes the IO manager anew per run.
    _written: dict[tuple[str, str, str], bytes] = PrivateAttr(default_factory=dict)

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        asset = context.asset_key.to_user_string()
        with self.catalog.opened() as source:
            for key in context.asset_partition_keys:
                frame = obj[obj["batch"] == key].reset_index(drop=True)
                data = zlib.compress(pickle.dumps(frame), 1)
                source.state.save_frame(asset, key, data)
                self._written[context.run_id, asset, key] = data

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        asset = context.asset_key.to_user_string()
        run_id = context.upstream_output.run_id if context.upstream_output else None
        stored = {
            key: self._written[run_id, asset, key]
            for key in context.asset_partition_keys
            if (run_id, asset, key) in self._written
        }
        missing = [key for key in context.asset_partition_keys if key not in stored]
        if missing:
            with self.catalog.opened() as source:
                for key in missing:
                    data = source.state.frame(asset, key)
                    # Missing is never "an empty batch": a step downstream would find every
                    # row of the batch gone (and, mirroring, archive its products).
                    if data is None:
                        raise dg.Failure(
                            f"{asset} has no data for batch {key} in {source.state.describe()}: "
                            "materialize that batch first."
                        )
                    stored[key] = data
        frames = [
            pickle.loads(zlib.decompress(stored[key])) for key in context.asset_partition_keys
        ]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["batch"])


def secret(value: Secret | None) -> dg.EnvVar | str:
    """A secret as Dagster may keep it: the variable it came from (resolved at run time);
    a literal only where the settings allow one (a URL without a password)."""
    if value is None:
        return ""
    return dg.EnvVar(value.variable) if value.variable else value.value


def throttle_store(settings: Settings) -> tuple[Secret | None, str]:
    """Where the Stripe budget is shared, and the setting that says so: `throttle.url`, else
    the state's database when it is PostgreSQL (every machine that runs the pipeline reaches
    it), else None: a SQLite file in `paths.state_dir`, for one machine."""
    if settings.throttle.url is not None:
        return settings.throttle.url, "STRIPE_SYNC_THROTTLE_URL"
    for url, setting in (
        (settings.state.url, "STRIPE_SYNC_STATE_URL"),
        (settings.catalog.database_url, "CATALOG_DATABASE_URL"),
    ):
        if url is not None:
            if url.value.startswith(("postgresql:", "postgres:")):
                return url, setting
            break
    return None, "STRIPE_SYNC_STATE_DIR"


def build_resources(settings: Settings, progress: RunProgress | None = None) -> dict[str, object]:
    """Every resource, configured from `settings`. `progress`: where the runs of a command
    that draws a migration's progress say how far they are (in process only)."""
    state_dir = str(settings.state_dir)
    throttle_url, throttle_setting = throttle_store(settings)
    catalog = CatalogResource(
        database_url=secret(settings.catalog.database_url),
        supabase_url=settings.catalog.supabase_url,
        supabase_service_role_key=secret(settings.catalog.supabase_service_role_key),
        table=settings.catalog.table,
        query=settings.catalog.query or "",
        where=settings.catalog.where or "",
        mapping=CatalogMapping.of(settings.catalog_mapping()),
        prices=PricesConfig.of(settings.prices.model()),
        state_url=secret(settings.state.url),
        timeout_s=settings.catalog.timeout_s,
        retry_attempts=settings.catalog.retry_attempts,
        retry_deadline_s=settings.catalog.retry_deadline_s,
        retry_base_delay_s=settings.catalog.retry_base_delay_s,
        retry_max_delay_s=settings.catalog.retry_max_delay_s,
    )
    return {
        "progress": progress or NoProgress(),
        "catalog": catalog,
        "stripe": StripeResource(
            secret_key=secret(settings.stripe.secret_key),
            api_base=settings.stripe.api_base,
            allow_live_mode=settings.stripe.allow_live_mode,
            timeout_s=settings.stripe.timeout_s,
            max_attempts=settings.stripe.max_attempts,
            deadline_s=settings.stripe.deadline_s,
            max_in_flight=settings.stripe.max_in_flight,
            catalog=catalog,
            throttle_url=secret(throttle_url),
            throttle_setting=throttle_setting,
            throttle_fraction=settings.throttle.fraction,
            throttle_global_rate=settings.throttle.global_rate,
            throttle_endpoint_rate=settings.throttle.endpoint_rate,
            state_dir=state_dir,
        ),
        "settings": PipelineSettings(
            batch_size=settings.sync.batch_size,
            mirror=settings.sync.mirror,
            adopt_metadata_key=settings.adopt.metadata_key,
            # The catalog's one currency, when it has no currency column.
            default_currency=settings.catalog.currency or settings.validation.default_currency,
            price_unit=settings.catalog.price_unit,
            prices_unit=settings.prices.price_unit,
            round_prices=settings.validation.round_prices,
            allow_free_products=settings.validation.allow_free_products,
            skip_validation=settings.validation.skip_validation,
            max_price_eur=str(settings.validation.max_price_eur),
            invalid_share_threshold=settings.validation.invalid_share_threshold,
            reports_dir=str(settings.paths.reports_dir),
        ),
        "automation": AutomationResource(
            removal_scan_minutes=settings.automation.removal_scan_minutes,
            retry_base_minutes=settings.automation.retry_base_minutes,
            retry_max_attempts=settings.automation.retry_max_attempts,
        ),
        "batch_frames": BatchFrameIOManager(catalog=catalog),
    }
