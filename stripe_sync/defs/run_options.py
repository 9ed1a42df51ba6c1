"""The options of one run: one typed class, from which the commands build their run config and
which every step that takes options reads (in the launchpad: `ops: <step>: config:`)."""

import dagster as dg
from pydantic import Field

from stripe_sync.core.planner import PlanOptions
from stripe_sync.settings.model import Settings

# The steps that take the run's options; the others have none.
STEPS_WITH_OPTIONS = ("validated_products", "stripe_products", "stripe_matches_catalog")


class RunOptions(dg.Config):
    """How one run syncs. An option left unset follows its setting."""

    dry_run: bool = Field(
        default=False,
        description="Plan only: the plan is an observation of stripe_products; nothing is "
        "materialized, and no Stripe or catalog request is made.",
    )
    force_resync: bool = Field(
        default=False,
        description="Re-send every product's fields and check its price, whatever the hashes say.",
    )
    no_checkpoint: bool = Field(
        default=False,
        description="Trust no stored sync state: read every synced product from Stripe and "
        "write only what differs.",
    )
    mirror: bool | None = Field(
        default=None,
        description="Archive the Stripe products of rows deleted from the catalog (and verify "
        "that they are); unset: the setting sync.mirror.",
    )
    skip_validation: bool | None = Field(
        default=None,
        description="Skip the business rules (minimum, maximum, free); unset: the setting "
        "validation.skip_validation.",
    )

    def mirrors(self, settings: Settings) -> bool:
        return settings.sync.mirror if self.mirror is None else self.mirror

    def plan_options(self, settings: Settings) -> PlanOptions:
        return PlanOptions(
            force_resync=self.force_resync,
            use_checkpoints=not self.no_checkpoint,
            mirror=self.mirrors(settings),
            adopt_metadata_key=settings.adopt.metadata_key,
        )

    def run_config(self, job: dg.JobDefinition) -> dict:
        """Run config giving these options to every step of `job` that takes them."""
        steps = set(job.graph.node_names())
        options = self.model_dump(exclude_defaults=True)
        return {"ops": {step: {"config": options} for step in STEPS_WITH_OPTIONS if step in steps}}
