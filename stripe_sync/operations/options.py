"""The options of one command's runs, and the run config that carries them to Dagster."""

from __future__ import annotations

from dataclasses import dataclass

from stripe_sync.core.planner import PlanOptions
from stripe_sync.settings.model import Settings

DEFAULT_LOG_FILE = "logs/stripe-sync.log"


@dataclass(frozen=True)
class RunOptions:
    """How this command's runs sync; the mirror and skip-validation choices are settings
    (flags included) and travel in the same run config."""

    force_resync: bool = False  # re-send every product's fields, whatever the hashes say
    no_checkpoint: bool = False  # trust no stored state: read every synced product
    log_level: str = "INFO"
    log_file: str = DEFAULT_LOG_FILE
    console_logs: bool = True  # off where the command draws a progress bar instead

    def plan_options(self, settings: Settings) -> PlanOptions:
        return PlanOptions(
            force_resync=self.force_resync,
            use_checkpoints=not self.no_checkpoint,
            mirror=settings.sync.mirror,
            adopt_metadata_key=settings.adopt.metadata_key,
        )

    def loggers(self) -> dict:
        return {
            "console": {
                "config": {
                    "log_level": self.log_level,
                    "log_file": self.log_file,
                    "console": self.console_logs,
                }
            }
        }

    def migrate_config(self, settings: Settings) -> dict:
        """Run config of `migrate_batches`: every step told this run's choices."""
        return {
            "loggers": self.loggers(),
            "ops": {
                "validated_products": {
                    "config": {"skip_validation": settings.validation.skip_validation}
                },
                "stripe_products": {
                    "config": {
                        "force_resync": self.force_resync,
                        "no_checkpoint": self.no_checkpoint,
                        "mirror": settings.sync.mirror,
                    }
                },
                "stripe_matches_catalog": {"config": {"mirror": settings.sync.mirror}},
            },
        }

    def verify_config(self, settings: Settings) -> dict:
        """Run config of `verify_batches`."""
        return {
            "loggers": self.loggers(),
            "ops": {"stripe_matches_catalog": {"config": {"mirror": settings.sync.mirror}}},
        }
