"""Pre-flight: is everything a migration needs there, before anything is written?"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from stripe_sync.core.errors import ConfigError, ErrorKind, StripeFailure
from stripe_sync.core.retry import RetryStats
from stripe_sync.core.wording import counted
from stripe_sync.factory import opened_catalog, opened_stripe_api
from stripe_sync.settings.model import Settings


@dataclass(frozen=True)
class PreflightResult:
    catalog: str
    catalog_rows: int
    write_back_columns: bool
    state: str
    stripe_mode: str
    stripe_api_base: str
    stripe_account: str
    mapping: list[str]

    def lines(self) -> list[str]:
        mode = (
            "write-back columns present: filled with each row's sync state"
            if self.write_back_columns
            else "no write-back columns: the table is left untouched"
        )
        return [
            f"catalog: {self.catalog} ({counted(self.catalog_rows, 'row')}, {mode})",
            "mapping: " + "; ".join(self.mapping),
            f"state: {self.state}",
            f"stripe: {self.stripe_mode.upper()} mode at {self.stripe_api_base}, account {self.stripe_account}",
        ]


def preflight(
    settings: Settings,
    *,
    say: Callable[[str], None] = print,
) -> PreflightResult:
    """Check the catalog and Stripe; raise ConfigError or CatalogError with one sentence.
    A database that does not answer (a failover) is waited for within the retry deadline,
    and `say` is told so once."""
    with opened_catalog(settings, on_waiting=say) as source:
        source.check()
        rows = source.count_ids()
        description = source.describe()
        write_back_columns = source.has_write_back_columns
        state = source.state.describe()
    with opened_stripe_api(settings, RetryStats(on_waiting=say)) as api:
        try:
            account = api.account()
        except StripeFailure as failure:
            if failure.kind is ErrorKind.FATAL:
                raise ConfigError(f"Stripe rejected STRIPE_SECRET_KEY: {failure}") from None
            raise ConfigError(f"Cannot reach Stripe at {api.api_base}: {failure}") from None
    name = (account.get("settings") or {}).get("dashboard", {}).get("display_name") or account.get(
        "id"
    )
    return PreflightResult(
        description,
        rows,
        write_back_columns,
        state,
        api.mode,
        api.api_base,
        f"{name} ({account['id']})",
        _mapping_lines(settings),
    )


def _mapping_lines(settings: Settings) -> list[str]:
    mapping, prices = settings.catalog_mapping(), settings.prices.model()
    lines = (
        [f"none: each field in the column of its name ({', '.join(mapping.columns)})"]
        if mapping.is_default
        else mapping.describe()
    )
    if prices is not None:
        lines += [f"prices from {prices.describe()}", *prices.mapping.describe()]
    return lines
