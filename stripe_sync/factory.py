"""One path from the settings to the pipeline's objects: the catalog with its state, the
Stripe API with its throttle, the retry policy and the validation rules, each built here from
`Settings` and nowhere else. Plain Python: the Dagster resources, the commands and the tests
all call it.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Callable, Iterator
from pathlib import Path

from stripe_sync.backends import open_catalog, open_state
from stripe_sync.core.retry import RetryPolicy, RetryStats
from stripe_sync.core.state import TrackedCatalog
from stripe_sync.core.stripe_api import StripeApi, key_mode
from stripe_sync.core.throttle import open_throttle
from stripe_sync.core.validation import ValidationRules
from stripe_sync.settings.model import Secret, Settings

# What a Stripe request takes, roughly: sizes the requests in flight so that latency never
# caps the throttled rate (rate x latency x 2) when `stripe.max_in_flight` is 0.
EXPECTED_LATENCY_S = 0.3


def retry_policy(settings: Settings, *, deadline_s: float | None = None) -> RetryPolicy:
    """How every database the pipeline talks to is retried: the catalog, the state and the
    throttle's store (`deadline_s` shortens the deadline)."""
    catalog = settings.catalog
    return RetryPolicy(
        attempts=catalog.retry_attempts,
        deadline_s=min(catalog.retry_deadline_s, deadline_s or catalog.retry_deadline_s),
        base_delay_s=catalog.retry_base_delay_s,
        max_delay_s=catalog.retry_max_delay_s,
    )


def open_tracked_catalog(
    settings: Settings,
    *,
    deadline_s: float | None = None,
    on_waiting: Callable[[str], None] | None = None,
) -> TrackedCatalog:
    """The catalog with its state store, retried by one policy (`deadline_s` shortens its
    deadline) and counted in one `RetryStats` (`on_waiting`: told once when a call waits for
    a database that does not answer); close it after use."""
    retry = retry_policy(settings, deadline_s=deadline_s)
    stats = RetryStats(on_waiting=on_waiting)
    section = settings.catalog
    catalog = open_catalog(
        database_url=_value(section.database_url),
        supabase_url=section.supabase_url or None,
        supabase_key=_value(section.supabase_service_role_key),
        table=section.table,
        mapping=settings.catalog_mapping(),
        prices=settings.prices.model(),
        query=section.query,
        where=section.where,
        timeout_s=section.timeout_s,
        retry=retry,
        stats=stats,
    )
    try:
        state = open_state(
            catalog,
            _value(settings.state.url),
            timeout_s=section.timeout_s,
            retry=retry,
            stats=stats,
        )
        return TrackedCatalog(catalog, state, stats)
    except BaseException:
        catalog.close()
        raise


@contextlib.contextmanager
def opened_catalog(
    settings: Settings,
    *,
    deadline_s: float | None = None,
    on_waiting: Callable[[str], None] | None = None,
) -> Iterator[TrackedCatalog]:
    """`open_tracked_catalog`, closed on leaving."""
    source = open_tracked_catalog(settings, deadline_s=deadline_s, on_waiting=on_waiting)
    try:
        yield source
    finally:
        source.close()


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


def open_stripe_api(settings: Settings, retries: RetryStats | None = None) -> StripeApi:
    """The Stripe API with its throttle, whose store is retried as the catalog is (counted in
    `retries`); close it after use."""
    secret_key = _value(settings.stripe.secret_key) or ""
    store, setting = throttle_store(settings)
    throttle = open_throttle(
        store.value if store else f"sqlite:///{Path(settings.state_dir, 'stripe_throttle.sqlite')}",
        mode=key_mode(secret_key) if secret_key else "test",
        # A hash of the key names the account's budget: never the key itself.
        namespace=hashlib.sha256(secret_key.encode()).hexdigest()[:16],
        fraction=settings.throttle.fraction,
        global_rate=settings.throttle.global_rate,
        endpoint_rate=settings.throttle.endpoint_rate,
        setting=setting,
        timeout_s=settings.catalog.timeout_s,
        retry=retry_policy(settings),
        stats=retries,
    )
    stripe = settings.stripe
    return StripeApi(
        secret_key,
        retry=RetryPolicy(attempts=stripe.max_attempts, deadline_s=stripe.deadline_s),
        throttle=throttle,
        api_base=stripe.api_base or None,
        timeout_s=stripe.timeout_s,
        allow_live_mode=stripe.allow_live_mode,
    )


@contextlib.contextmanager
def opened_stripe_api(settings: Settings, retries: RetryStats | None = None) -> Iterator[StripeApi]:
    """`open_stripe_api`, closed on leaving."""
    api = open_stripe_api(settings, retries)
    try:
        yield api
    finally:
        api.close()


def in_flight(settings: Settings, api: StripeApi) -> int:
    """Products in progress at once: `stripe.max_in_flight`, else enough that latency never
    caps the throttled rate."""
    return settings.stripe.max_in_flight or max(2, math.ceil(api.rate * EXPECTED_LATENCY_S * 2))


def validation_rules(settings: Settings, *, skip_validation: bool | None = None) -> ValidationRules:
    """The row rules; `skip_validation` (a run's choice) over the setting."""
    validation = settings.validation
    return ValidationRules(
        # The catalog's one currency, when it has no currency column.
        default_currency=settings.catalog.currency or validation.default_currency,
        price_unit=settings.catalog.price_unit,
        prices_unit=settings.prices.price_unit,
        round_prices=validation.round_prices,
        allow_free_products=validation.allow_free_products,
        skip_validation=validation.skip_validation if skip_validation is None else skip_validation,
        max_price_eur=validation.max_price_eur,
    )


def _value(secret: Secret | None) -> str | None:
    return secret.value if secret is not None else None
