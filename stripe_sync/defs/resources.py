"""Resources: the catalog, Stripe, the pipeline's settings, and batch-frame storage."""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from stripe_sync.catalog import Catalog, CatalogError, open_catalog
from stripe_sync.core.backups import BackupStore
from stripe_sync.core.checkpoints import CheckpointStore
from stripe_sync.core.errors import ConfigError
from stripe_sync.core.identity import reserved_metadata_keys
from stripe_sync.core.jsonfiles import read_json, write_json
from stripe_sync.core.retry import RetryPolicy
from stripe_sync.core.stripe_api import StripeApi, key_mode
from stripe_sync.core.throttle import open_throttle
from stripe_sync.core.validation import ValidationRules


class CatalogResource(dg.ConfigurableResource):
    """The product catalog: direct SQL when `database_url` is set, else Supabase (PostgREST)."""

    # Secrets (a URL may hold a password) stay out of reprs and error messages.
    database_url: str = Field(default="", repr=False)
    supabase_url: str = ""
    supabase_service_role_key: str = Field(default="", repr=False)
    table: str = "products"
    metadata_columns: list[str] = Field(
        default_factory=list
    )  # catalog columns copied into metadata

    def open(self) -> Catalog:
        reserved = set(self.metadata_columns) & set(reserved_metadata_keys())
        if reserved:
            raise ConfigError(
                f"STRIPE_SYNC_METADATA_COLUMNS names {', '.join(sorted(reserved))}, a metadata key the pipeline "
                "owns: map another column."
            )
        return open_catalog(
            database_url=self.database_url or None,
            supabase_url=self.supabase_url or None,
            supabase_key=self.supabase_service_role_key or None,
            table=self.table,
            metadata_columns=self.metadata_columns,
        )

    @contextlib.contextmanager
    def opened(self) -> Iterator[Catalog]:
        source = self.open()
        try:
            yield source
        finally:
            source.close()


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Configuration problems fail the step with their one sentence, not a traceback."""
    try:
        yield
    except (ConfigError, CatalogError) as error:
        raise dg.Failure(str(error)) from None


class StripeResource(dg.ConfigurableResource):
    """Stripe through stripe-python's StripeClient; `api_base` points it at an emulator."""

    secret_key: str = Field(default="", repr=False)
    api_base: str = ""
    allow_live_mode: bool = False
    timeout_s: float = 30.0  # per request
    max_attempts: int = 6  # per call, the first one included
    deadline_s: float = 300.0  # per call, all attempts
    # Where every process shares the rate budget: "" is a SQLite file in DAGSTER_HOME (one
    # machine); postgresql://… or redis://… across machines.
    throttle_url: str = ""
    throttle_fraction: float = 0.8  # of Stripe's limits for the key's mode
    # Requests in flight; 0 sizes it so latency never caps throughput (rate x latency).
    max_in_flight: int = 0
    expected_latency_s: float = 0.3

    def api(self) -> StripeApi:
        mode = key_mode(self.secret_key) if self.secret_key else "test"
        store = self.throttle_url or f"sqlite:///{storage_dir() / 'stripe_throttle.sqlite'}"
        throttle = open_throttle(
            store,
            mode=mode,
            namespace=hashlib.sha256(self.secret_key.encode()).hexdigest()[
                :16
            ],  # never the key itself
            fraction=self.throttle_fraction,
        )
        return StripeApi(
            self.secret_key,
            retry=RetryPolicy(attempts=self.max_attempts, deadline_s=self.deadline_s),
            throttle=throttle,
            api_base=self.api_base or None,
            timeout_s=self.timeout_s,
            allow_live_mode=self.allow_live_mode,
        )

    def in_flight(self, api: StripeApi) -> int:
        """Products in progress at once: enough that latency never caps the throttled rate."""
        return self.max_in_flight or max(2, math.ceil(api.rate * self.expected_latency_s * 2))


class SyncSettings(dg.ConfigurableResource):
    """How the pipeline batches, validates and reports."""

    batch_size: int = 1_000
    default_currency: str = "eur"
    reports_dir: str = "reports"
    round_prices: bool = False
    allow_free_products: bool = False
    skip_validation: bool = False  # business rules only; what Stripe would reject always counts
    max_price_eur: str = "1000000"  # a decimal string: money is never a float
    invalid_share_threshold: float = 0.05
    # Archive the Stripe products of rows deleted from the catalog (else only report them).
    mirror: bool = False

    def validation_rules(self) -> ValidationRules:
        return ValidationRules(
            default_currency=self.default_currency,
            round_prices=self.round_prices,
            allow_free_products=self.allow_free_products,
            skip_validation=self.skip_validation,
            max_price_eur=Decimal(self.max_price_eur),
        )


class AutomationSettings(dg.ConfigurableResource):
    """How the change sensor looks for removed rows and the failed-batch sensor retries."""

    removal_scan_minutes: float = 15.0  # a full id scan for deleted rows, at most this often
    retry_base_minutes: float = 5.0  # the wait before the first retry; doubled for each next
    retry_max_attempts: int = 3  # retries of a failed batch before the sensor gives up


class BatchFrameIOManager(dg.ConfigurableIOManager):
    """Stores an asset's DataFrame per batch partition; a run over several batches writes one
    file per batch (split on the `batch` column) and a reader gets the batches it asks for."""

    base_dir: str

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        for key in context.asset_partition_keys:
            path = self._path(context, key)
            path.parent.mkdir(parents=True, exist_ok=True)
            obj[obj["batch"] == key].reset_index(drop=True).to_pickle(path)

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        frames = []
        for key in context.asset_partition_keys:
            path = self._path(context, key)
            # Missing is never "an empty batch": a step downstream would find every row of
            # the batch gone (and, mirroring, archive its products).
            if not path.exists():
                raise dg.Failure(
                    f"{context.asset_key.to_user_string()} has no data for batch {key} (no "
                    f"{path}): materialize that batch first. With run workers on several "
                    "machines, STRIPE_SYNC_STATE_DIR must be a volume they all share."
                )
            frames.append(pd.read_pickle(path))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["batch"])

    def _path(self, context: dg.OutputContext | dg.InputContext, partition_key: str) -> Path:
        return Path(self.base_dir, *context.asset_key.path, f"{partition_key}.pkl")


class OutcomeLedger(dg.ConfigurableResource):
    """The per-row outcomes of the latest run of each Stripe asset and batch, as JSON files.

    Written before a batch's step succeeds or fails, so a failed batch's finished work
    still reaches the prices step of the next run and the report.
    """

    base_dir: str

    def save(self, asset: str, batch: str, record: dict) -> None:
        write_json(self._path(asset, batch), record)

    def load(self, asset: str, batch: str) -> dict | None:
        return read_json(self._path(asset, batch))

    def _path(self, asset: str, batch: str) -> Path:
        return Path(self.base_dir, asset, f"{batch}.json")


class CheckpointResource(dg.ConfigurableResource):
    """Per batch, what each row was last made in Stripe (see core/checkpoints.py)."""

    base_dir: str

    def store(self) -> CheckpointStore:
        return CheckpointStore(self.base_dir)


class BackupResource(dg.ConfigurableResource):
    """Per run and batch, the catalog rows and Stripe objects before the run changed them."""

    base_dir: str

    def store(self) -> BackupStore:
        return BackupStore(self.base_dir)


def env_var(*names: str) -> dg.EnvVar | str:
    """The first of `names` set in the environment, as an EnvVar (the UI and the run
    storage show its name, never its value); "" when none is set."""
    for name in names:
        if os.environ.get(name):
            return dg.EnvVar(name)
    return ""


def resources_from_env(storage_dir: Path) -> dict[str, object]:
    """The resources, configured from the environment (keys wired as EnvVar, never values)."""
    return {
        "catalog": CatalogResource(
            database_url=env_var("CATALOG_DATABASE_URL"),
            supabase_url=env_var("SUPABASE_URL", "VITE_SUPABASE_URL"),
            supabase_service_role_key=env_var("SUPABASE_SERVICE_ROLE_KEY"),
            table=os.environ.get("CATALOG_TABLE", "products"),
            metadata_columns=[
                c.strip()
                for c in os.environ.get("STRIPE_SYNC_METADATA_COLUMNS", "").split(",")
                if c.strip()
            ],
        ),
        "stripe": StripeResource(
            secret_key=env_var("STRIPE_SECRET_KEY"),
            api_base=env_var("STRIPE_API_BASE"),
            allow_live_mode=_flag("STRIPE_ALLOW_LIVE_MODE"),
            throttle_url=env_var("STRIPE_SYNC_THROTTLE_URL"),
            throttle_fraction=float(_decimal("STRIPE_SYNC_THROTTLE_FRACTION", default="0.8")),
            timeout_s=float(_decimal("STRIPE_TIMEOUT_S", default="30")),
            max_attempts=_whole_number("STRIPE_MAX_ATTEMPTS", default=6),
            deadline_s=float(_decimal("STRIPE_DEADLINE_S", default="300")),
            max_in_flight=_whole_number("STRIPE_SYNC_MAX_IN_FLIGHT", default=0, minimum=0),
        ),
        "settings": SyncSettings(
            batch_size=_whole_number("STRIPE_SYNC_BATCH_SIZE", default=1000),
            default_currency=os.environ.get("STRIPE_SYNC_DEFAULT_CURRENCY", "eur"),
            reports_dir=os.environ.get("STRIPE_SYNC_REPORTS_DIR", "reports"),
            round_prices=_flag("STRIPE_SYNC_ROUND_PRICES"),
            allow_free_products=_flag("STRIPE_SYNC_ALLOW_FREE_PRODUCTS"),
            skip_validation=_flag("STRIPE_SYNC_SKIP_VALIDATION"),
            max_price_eur=_decimal("STRIPE_SYNC_MAX_PRICE_EUR", default="1000000"),
            invalid_share_threshold=float(
                _decimal("STRIPE_SYNC_INVALID_SHARE_THRESHOLD", default="0.05")
            ),
            mirror=_flag("STRIPE_SYNC_MIRROR"),
        ),
        "automation": AutomationSettings(
            removal_scan_minutes=float(_decimal("STRIPE_SYNC_REMOVAL_SCAN_MINUTES", default="15")),
            retry_base_minutes=float(_decimal("STRIPE_SYNC_RETRY_BASE_MINUTES", default="5")),
            retry_max_attempts=_whole_number(
                "STRIPE_SYNC_RETRY_MAX_ATTEMPTS", default=3, minimum=0
            ),
        ),
        "batch_frames": BatchFrameIOManager(base_dir=str(storage_dir / "frames")),
        "ledger": OutcomeLedger(base_dir=str(storage_dir / "ledger")),
        "checkpoints": CheckpointResource(base_dir=str(storage_dir / "checkpoints")),
        "backups": BackupResource(
            base_dir=os.environ.get("STRIPE_SYNC_BACKUPS_DIR") or str(storage_dir / "backups")
        ),
    }


def storage_dir() -> Path:
    """Where the pipeline keeps its state (batch frames, outcome ledgers, checkpoints,
    backups, the default SQLite throttle): STRIPE_SYNC_STATE_DIR when set (across machines,
    a shared volume mounted at the same path on every run worker), else DAGSTER_HOME/stripe_sync."""
    if state_dir := os.environ.get("STRIPE_SYNC_STATE_DIR", "").strip():
        return Path(state_dir)
    return Path(os.environ.get("DAGSTER_HOME") or ".dagster_home", "stripe_sync")


def _whole_number(name: str, *, default: int, minimum: int = 1) -> int:
    value = os.environ.get(name) or str(default)
    if not value.isdigit() or int(value) < minimum:
        raise ConfigError(f"{name} must be a whole number of at least {minimum}, not {value!r}.")
    return int(value)


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def _decimal(name: str, *, default: str) -> str:
    value = os.environ.get(name) or default
    try:
        if Decimal(value) < 0:
            raise InvalidOperation
    except InvalidOperation:
        raise ConfigError(f"{name} must be a non-negative decimal number, not {value!r}.") from None
    return value
