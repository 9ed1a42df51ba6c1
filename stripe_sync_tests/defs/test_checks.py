"""The verification checks in Dagster: `BatchVerify`'s results become each batch's check
evaluations, its repairs a warning in the run's log, a key Stripe refuses the run's outcome."""

from __future__ import annotations

import dagster as dg
import stripe

from stripe_sync.defs.loggers import LogOptions
from stripe_sync.defs.outcomes import DETAIL_TAG, OUTCOME_TAG, RunOutcome
from stripe_sync.defs.run_options import RunOptions
from stripe_sync.operations.verify import Verification, verify
from stripe_sync.settings.loader import load_settings
from stripe_sync_tests.conftest import TEST_SECRET_KEY
from stripe_sync_tests.defs.conftest import products


def verified(pipeline_env) -> Verification:
    """`stripe-sync verify` in process, logging to the test's log file."""
    return verify(load_settings(), RunOptions(), LogOptions(log_file=str(pipeline_env.log_file)))


def test_drift_fails_the_check_and_is_logged_as_a_warning_naming_the_batch(
    products_table, pipeline_env, emulator
):
    pipeline_env.use_catalog(products_table(products(3)))
    assert pipeline_env.migrate().succeeded
    dashboard = stripe.StripeClient(TEST_SECRET_KEY, base_addresses={"api": emulator.base_url})
    dashboard.v1.products.update("cms_sku-00001", {"name": "Renamed in the Dashboard"})

    drifted = verified(pipeline_env)

    assert drifted.exit_code == 1 and drifted.failed_checks == 1
    with dg.DagsterInstance.get() as instance:
        [batch] = instance.get_dynamic_partitions("product_batches")
    [warning] = [
        line for line in pipeline_env.log_file.read_text().splitlines() if "drifted" in line
    ]
    assert " WARNING verify_batches " in warning
    assert warning.endswith(f" - batch {batch}: 1 drifted row; the next sync reconciles them")


def test_a_key_stripe_refuses_ends_the_run_as_key_refused_naming_the_setting(
    products_table, pipeline_env, emulator
):
    pipeline_env.use_catalog(products_table(products(3)))
    assert pipeline_env.migrate().succeeded
    emulator.configure(api_keys=[TEST_SECRET_KEY])
    pipeline_env.set(STRIPE_SECRET_KEY="sk_test_revoked_by_the_account_owner")

    refused = verified(pipeline_env)

    assert refused.exit_code == 2 and refused.wrong_configuration
    with dg.DagsterInstance.get() as instance:
        [run] = instance.get_runs(dg.RunsFilter(job_name="verify_batches"))
    assert run.tags[OUTCOME_TAG] == RunOutcome.KEY_REFUSED
    assert run.tags[DETAIL_TAG].startswith("Stripe refused the key (")
    assert run.tags[DETAIL_TAG].endswith("): check STRIPE_SECRET_KEY.")
    assert refused.failures[0].endswith(run.tags[DETAIL_TAG])
