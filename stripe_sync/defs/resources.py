"""Resources: thin handles on the pipeline's objects, which `stripe_sync.factory` builds from
the settings.

Dagster holds only the secrets, each as the `dg.EnvVar` it came from: the UI and the run
storage show the variable's name, never its value. Every other setting is the `Settings`
object itself (resource `settings`), shown masked as the assets' metadata.
"""

# No `from __future__ import annotations`: Dagster reads `dg.ResourceDependency` fields at
# runtime.
import pickle
import zlib
from collections.abc import Callable
from contextlib import AbstractContextManager

import dagster as dg
import pandas as pd
from pydantic import Field, PrivateAttr

from stripe_sync import factory
from stripe_sync.core.progress import NoProgress, RunProgress
from stripe_sync.core.retry import RetryStats
from stripe_sync.core.state import TrackedCatalog
from stripe_sync.core.stripe_api import StripeApi
from stripe_sync.settings.model import Secret, Settings


class SecretsResource(dg.ConfigurableResource):
    """The secrets of the catalog, the state, Stripe and the throttle, each named as its
    setting's key with `_` for `.` (`stripe.secret_key`: `stripe_secret_key`) and given as the
    environment variable it came from, which Dagster resolves when a run starts. (The Celery
    executor takes its own two.)"""

    stripe_secret_key: str = Field(default="", repr=False)
    catalog_database_url: str = Field(default="", repr=False)
    catalog_supabase_service_role_key: str = Field(default="", repr=False)
    state_url: str = Field(default="", repr=False)
    throttle_url: str = Field(default="", repr=False)

    @classmethod
    def of(cls, settings: Settings) -> "SecretsResource":
        return cls(**{name: _as_dagster(settings.value(_key(name))) for name in cls.model_fields})

    def given(self, settings: Settings) -> Settings:
        """`settings` with the secrets as Dagster resolved them."""
        return settings.with_secrets(
            {_key(name): getattr(self, name) for name in type(self).model_fields}
        )


class _BuiltFromSettings(dg.ConfigurableResource):
    """A handle on what `factory` builds from the settings and the secrets."""

    settings: dg.ResourceDependency[Settings]
    secrets: SecretsResource

    def resolved_settings(self) -> Settings:
        """The settings with the secrets Dagster resolved: what `factory` builds from."""
        return self.secrets.given(self.settings)


class CatalogResource(_BuiltFromSettings):
    """The product catalog (direct SQL, or Supabase's PostgREST) and the pipeline's state."""

    def opened(
        self,
        *,
        deadline_s: float | None = None,
        on_waiting: Callable[[str], None] | None = None,
    ) -> AbstractContextManager[TrackedCatalog]:
        """The catalog with its state store (`factory.opened_catalog`)."""
        return factory.opened_catalog(
            self.resolved_settings(), deadline_s=deadline_s, on_waiting=on_waiting
        )


class StripeResource(_BuiltFromSettings):
    """Stripe through stripe-python's StripeClient, throttled to the account's shared budget."""

    def api(self, retries: RetryStats | None = None) -> StripeApi:
        """The API, its throttle's store retried as the catalog is (counted in `retries`)."""
        return factory.open_stripe_api(self.resolved_settings(), retries)

    def opened(self, retries: RetryStats | None = None) -> AbstractContextManager[StripeApi]:
        return factory.opened_stripe_api(self.resolved_settings(), retries)

    def in_flight(self, api: StripeApi) -> int:
        """Products in progress at once (`factory.in_flight`)."""
        return factory.in_flight(self.settings, api)


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


def _key(field: str) -> str:
    """The setting a secret's field holds: `stripe_secret_key` is `stripe.secret_key`."""
    return field.replace("_", ".", 1)


def _as_dagster(value: Secret | None) -> dg.EnvVar | str:
    """A secret as Dagster may keep it: the variable it came from (resolved at run time);
    a literal only where the settings allow one (a URL without a password)."""
    if value is None:
        return ""
    return dg.EnvVar(value.variable) if value.variable else value.value


def build_resources(settings: Settings, progress: RunProgress | None = None) -> dict[str, object]:
    """Every resource, from `settings`. `progress`: where the runs of a command that draws a
    migration's progress say how far they are (in process only)."""
    secrets = SecretsResource.of(settings)
    catalog = CatalogResource(settings=settings, secrets=secrets)
    return {
        "settings": settings,
        "secrets": secrets,
        "progress": progress or NoProgress(),
        "catalog": catalog,
        "stripe": StripeResource(settings=settings, secrets=secrets),
        "batch_frames": BatchFrameIOManager(catalog=catalog),
    }
