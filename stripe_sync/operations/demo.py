"""The demo: a sample catalog (realistic products in SQLite, a few of them dirty) migrated
into the Stripe emulator, with no account anywhere."""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from stripe_sync.core.progress import MigrationProgress
from stripe_sync.defs.loggers import LogOptions
from stripe_sync.defs.outcomes import RunOutcome
from stripe_sync.defs.run_options import RunOptions
from stripe_sync.operations.migrate import MigrationResult, migrate
from stripe_sync.operations.ui import serve_dagster_ui
from stripe_sync.settings.loader import environment_for_child
from stripe_sync.settings.model import Secret, Settings

DEMO_SECRET_KEY = "sk_test_stripe_sync_demo"  # the emulator takes any test key
DEMO_BATCH_SIZE = 50
_DEMO_SOURCE = "demo"  # where the settings the demo makes say they came from

_ADJECTIVES = [
    "Merino",
    "Organic",
    "Recycled",
    "Classic",
    "Alpine",
    "Coastal",
    "Linen",
    "Canvas",
    "Cedar",
    "Heritage",
]
_ITEMS = ["Beanie", "Scarf", "Tote Bag", "Mug", "Notebook", "Candle", "Backpack", "Water Bottle", "Apron", "Blanket",
          "Hoodie", "Socks"]  # fmt: skip
# (currency, typical major-unit prices): EUR mostly, a zero-decimal one (JPY) and others.
_CURRENCIES = [(None, ["12.50", "19.90", "34.00", "7.95"]), ("usd", ["15.00", "24.99"]), ("gbp", ["11.50", "29.00"]),
               ("jpy", ["1500", "4800"]), ("chf", ["22.00"]), ("sek", ["149.00", "299.50"])]  # fmt: skip
# Rows the validation must stop, each for another reason.
_DIRTY_ROWS = [
    {"name": "   ", "price": "9.90"},
    {"name": "Broken price", "price": "abc"},
    {"name": "Negative price", "price": "-5.00"},
    {"name": "Unknown currency", "price": "10.00", "currency": "xyz"},
    {"name": "Too precise", "price": "9.999"},
]

_SCHEMA = """
create table if not exists products (
    id text primary key, name text, description text, price text, currency text, images text,
    active integer, updated_at text,
    stripe_product_id text, stripe_price_id text, sync_status text, sync_error text, synced_at text,
    sync_hash text
)
"""


def seed_sample_catalog(path: Path, products: int) -> str:
    """Create (or keep) the sample catalog at `path`; returns its SQLAlchemy URL."""
    connection = sqlite3.connect(path)
    with connection:
        connection.execute(_SCHEMA)
        if connection.execute("select count(*) from products").fetchone()[0] == 0:
            connection.executemany(
                "insert into products (id, name, description, price, currency, images, active, updated_at)"
                " values (:id, :name, :description, :price, :currency, :images, :active, :updated_at)",
                _sample_rows(products),
            )
    connection.close()
    return f"sqlite:///{path}"


def _sample_rows(count: int) -> list[dict]:
    rng = random.Random(42)
    now = datetime.now(UTC).isoformat()
    rows = []
    for n in range(1, count - len(_DIRTY_ROWS) + 1):
        currency, prices = rng.choice(_CURRENCIES)
        name = f"{rng.choice(_ADJECTIVES)} {rng.choice(_ITEMS)}"
        rows.append(
            {
                "id": f"sku-{n:05d}",
                "name": name,
                "description": f"{name}, made to last." if rng.random() < 0.7 else None,
                "price": rng.choice(prices),
                "currency": currency,
                "images": json.dumps([f"https://cdn.example.com/products/sku-{n:05d}.jpg"])
                if rng.random() < 0.6
                else None,
                "active": 0 if rng.random() < 0.05 else 1,
                "updated_at": now,
            }
        )
    for n, dirty in enumerate(_DIRTY_ROWS, start=1):
        rows.append(
            {
                "id": f"dirty-{n}",
                "description": None,
                "currency": None,
                "images": None,
                "active": 1,
                "updated_at": now,
                **dirty,
            }
        )
    return rows


@dataclass(frozen=True)
class DemoRun:
    state_file: Path
    settings: Settings
    migration: MigrationResult

    @property
    def stopped_on_request(self) -> bool:
        """Ctrl+C or SIGTERM stopped the migration (during a run, Dagster's own handler
        takes the signal, and the run records it)."""
        return self.migration.stopped is RunOutcome.STOPPED


def run_demo(
    settings: Settings,
    demo_dir: Path,
    products: int,
    *,
    log_file: str,
    say: Callable[[str], None] = print,
    stop_requested: Callable[[], bool] = lambda: False,
    progress: MigrationProgress | None = None,
) -> DemoRun:
    """Seed the sample catalog in `demo_dir` (kept if there), start the emulator on its saved
    state, migrate (the runs' logs to `log_file` only; `progress` told how far it is), and
    save the emulator's state for a later look in the UI."""
    demo_dir.mkdir(parents=True, exist_ok=True)
    catalog_url = seed_sample_catalog(demo_dir / "catalog.db", products)
    state_file = demo_dir / "stripe_emulator.json"
    with _demo_emulator(state_file) as api_base:
        say(f"sample catalog: {catalog_url}; Stripe emulator at {api_base}")
        demo = demo_settings(settings, demo_dir, catalog_url, api_base)
        migration = migrate(
            demo,
            RunOptions(),
            LogOptions(log_file=log_file, console=False),
            batches_per_run=2,
            say=say,
            stop_requested=stop_requested,
            progress=progress,
        )
    return DemoRun(state_file, demo, migration)


def show_demo_in_ui(
    run: DemoRun,
    ui_port: int,
    *,
    config_file: Path | None = None,
    say: Callable[[str], None] = print,
    stop_requested: Callable[[], bool],
) -> str | None:
    """The demo's runs in `dagster dev`, with the emulator started again on its saved state,
    until `stop_requested()`; the emulator saves its state again when it stops. `config_file`:
    the project file of a --config flag, for the UI's code location to read too. Returns why
    the UI ended before it was asked to stop, None when it served till then."""
    with _demo_emulator(run.state_file) as api_base:
        say(
            f"Stripe emulator at {api_base}, on its state saved in {run.state_file}, "
            "until the UI stops"
        )
        settings = run.settings.overridden({"stripe.api_base": api_base}, source=_DEMO_SOURCE)
        failure = serve_dagster_ui(
            settings.dagster_home,
            ui_port,
            environment_for_child(settings, _DEMO_SOURCE, config_file),
            run.state_file.parent / "dagster-dev.log",
            # In the demo's directory: Dagster loads the `.env` where it starts over the
            # environment, and this directory's describes your catalog, not the sample's.
            cwd=run.state_file.parent,
            say=say,
            stop_requested=stop_requested,
        )
    say(f"stopped the Dagster UI and the Stripe emulator (its state: {run.state_file})")
    return failure


def _demo_emulator(state_file: Path):
    """The emulator on `state_file` (loaded at start, saved at exit), a little slow like Stripe."""
    from stripe_sync.emulator import EmulatorConfig, run_emulator

    return run_emulator(EmulatorConfig(latency_ms=20, latency_jitter_ms=10), state_file=state_file)


def demo_settings(settings: Settings, demo_dir: Path, catalog_url: str, api_base: str) -> Settings:
    """`settings` pointed at the demo's catalog and emulator; a Dagster home and a batch size
    of the user's own (in the environment or a --config file) stay theirs."""
    defaults = {
        "paths.dagster_home": demo_dir / "dagster_home",
        "sync.batch_size": DEMO_BATCH_SIZE,
    }
    return settings.overridden(
        {
            **{key: v for key, v in defaults.items() if settings.source(key) == "default"},
            "catalog.database_url": Secret(catalog_url),
            "stripe.secret_key": Secret(DEMO_SECRET_KEY),
            "stripe.api_base": api_base,
            "paths.reports_dir": demo_dir / "reports",
        },
        source=_DEMO_SOURCE,
    )
