"""The Dagster UI end to end: `dagster dev` started from this repository's workspace.yaml
and dagster.yaml with a throwaway DAGSTER_HOME, driven only through Dagster's GraphQL API
(what the UI calls), against a PostgreSQL catalog and the Stripe emulator; then a real
browser (Playwright driving Debian's chromium) looks at the asset graph and the migration
report, and saves screenshots to artifacts/ui/ (STRIPE_SYNC_TEST_ARTIFACTS overrides
artifacts/)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dagster_graphql.client.client_queries import TERMINATE_RUN_JOB_MUTATION
from dagster_graphql.client.query import LAUNCH_PARTITION_BACKFILL_MUTATION
from playwright.sync_api import Page, expect, sync_playwright

from stripe_sync_tests.conftest import (
    BATCH_ASSETS,
    console_script,
    free_port,
    stop_process_group,
    stripe_state,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
# The five assets, all in one group, and the kind each shows (the catalog here is PostgreSQL).
GROUP = "stripe_sync"
KINDS = {
    "supabase_products": "postgres",
    "validated_products": "pandas",
    "stripe_products": "stripe",
    "stripe_prices": "stripe",
    "migration_report": "stripe",
}
CHECKS = {
    "validated_products": {"batch_structure", "invalid_share"},
    "stripe_products": {"products_match_catalog"},
    "stripe_prices": {"default_prices_match_catalog"},
}
SENSORS = {"migration_report_automation", "catalog_changes", "failed_batch_retry"}
SCHEDULES = {"reconcile_batches"}
# A run is a process per step here; under a loaded CI machine one batch takes ~20 s.
RUN_TIMEOUT_S = 180.0
# The flags the machine's closed network needs (no background connections to Google).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

CODE_LOCATION = """
{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
    locationOrLoadError {
      __typename
      ... on PythonError { message }
      ... on RepositoryLocation { repositories { name
        assetNodes { assetKey { path } groupName kinds assetChecksOrError { ... on AssetChecks { checks { name } } } }
        sensors { name } schedules { name } jobs { name } } } } } } } }
"""
LAUNCH_RUN = """
mutation ($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename
  ... on LaunchRunSuccess { run { runId } }
  ... on PythonError { message }
  ... on InvalidSubsetError { message }
  ... on RunConfigValidationInvalid { errors { message } } } }
"""
RUN_STATUS = "query ($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
BACKFILL = """
query ($id: String!) { partitionBackfillOrError(backfillId: $id) {
  ... on PartitionBackfill { status runs(limit: 100) { runId status } } } }
"""
PARTITIONS = """
query ($assetKey: AssetKeyInput!) { assetNodeOrError(assetKey: $assetKey) { ... on AssetNode {
  partitionKeysByDimension { partitionKeys }
  assetPartitionStatuses { ... on DefaultPartitionStatuses {
    materializedPartitions failedPartitions } } } } }
"""
CHECK_EXECUTIONS = """
query ($assetKey: AssetKeyInput!, $check: String!) {
  assetCheckExecutions(assetKey: $assetKey, checkName: $check, limit: 20) {
    runId status partition evaluation { success description } } }
"""
FINISHED_RUN = {"SUCCESS", "FAILURE", "CANCELED"}
CREATE = ("POST", "/v1/products")
FINISHED_BACKFILL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


@dataclass
class DagsterUI:
    """A running `dagster dev`, spoken to as the UI speaks to it."""

    url: str
    process: subprocess.Popen
    log: Path

    def graphql(self, query: str, **variables: object) -> dict:
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": variables}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.load(response)
        assert not answer.get("errors"), answer["errors"]
        return answer["data"]

    def launch_run(self, job: str, tags: dict[str, str] | None = None) -> str:
        params = {
            "selector": {
                "repositoryLocationName": "stripe_sync",
                "repositoryName": "__repository__",
                "jobName": job,
            },
            "executionMetadata": {
                "tags": [{"key": key, "value": value} for key, value in (tags or {}).items()]
            },
        }
        launched = self.graphql(LAUNCH_RUN, params=params)["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        return launched["run"]["runId"]

    def wait_for_run(self, run_id: str) -> str:
        return self._wait(
            lambda: self.graphql(RUN_STATUS, id=run_id)["runOrError"]["status"], FINISHED_RUN
        )

    def wait_for_backfill(self, backfill_id: str) -> dict:
        def backfill() -> dict:
            return self.graphql(BACKFILL, id=backfill_id)["partitionBackfillOrError"]

        self._wait(lambda: backfill()["status"], FINISHED_BACKFILL)
        return backfill()

    def partitions(self, asset: str) -> dict:
        node = self.graphql(PARTITIONS, assetKey={"path": [asset]})["assetNodeOrError"]
        return {
            "keys": node["partitionKeysByDimension"][0]["partitionKeys"],
            **node["assetPartitionStatuses"],
        }

    def check_executions(self, asset: str, check: str, run_id: str) -> list[dict]:
        executions = self.graphql(CHECK_EXECUTIONS, assetKey={"path": [asset]}, check=check)
        return [e for e in executions["assetCheckExecutions"] if e["runId"] == run_id]

    def wait_until_serving(self, timeout_s: float = 120.0) -> None:
        """Until the webserver answers and the code location has finished loading."""
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.process.poll() is None, f"dagster dev exited:\n{self.log.read_text()}"
            assert time.monotonic() < deadline, f"dagster dev not ready:\n{self.log.read_text()}"
            with contextlib.suppress(urllib.error.URLError, ConnectionError):
                entries = self.graphql(CODE_LOCATION)["workspaceOrError"]["locationEntries"]
                if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                    return
            time.sleep(0.5)

    def _wait(self, read, finished: set[str]) -> str:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while (status := read()) not in finished:
            assert self.process.poll() is None, f"dagster dev exited:\n{self.log.read_text()}"
            assert time.monotonic() < deadline, f"still {status} after {RUN_TIMEOUT_S} s"
            time.sleep(0.5)
        return status


@contextlib.contextmanager
def dagster_dev(env: dict[str, str], log: Path) -> Iterator[DagsterUI]:
    """`dagster dev -w workspace.yaml` on a free loopback port, from the repository root;
    stopped with its whole process group (webserver, daemon, code servers) after."""
    port = free_port()
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                console_script("dagster"),
                "dev",
                "-w",
                "workspace.yaml",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    ui = DagsterUI(f"http://127.0.0.1:{port}", process, log)
    try:
        ui.wait_until_serving()
        yield ui
    finally:
        stop_process_group(process)


def test_in_dagster_dev_a_batch_migrates_its_checks_pass_and_a_failed_batch_backfills(
    products_table, pipeline_env, emulator, tmp_path
):
    table = products_table(
        [{"id": f"sku-{n:03d}", "name": f"Product {n}", "price": "12.50"} for n in range(12)]
    )
    pipeline_env.use_catalog(table)
    # One product at a time: a stop from the UI lands between a batch's creates.
    pipeline_env.set(STRIPE_SYNC_BATCH_SIZE="4", STRIPE_SYNC_MAX_IN_FLIGHT="1")
    shutil.copy(REPO_ROOT / "dagster.yaml", pipeline_env.dagster_home / "dagster.yaml")

    with dagster_dev(pipeline_env.cli_env(), tmp_path / "dagster-dev.log") as ui:
        assert_code_location_loads_everything(ui)

        assert ui.wait_for_run(ui.launch_run("register_batches_job")) == "SUCCESS"
        keys = ui.partitions("stripe_products")["keys"]
        assert len(keys) == 3

        # One batch, as "Materialize" on a partition launches it.
        synced = ui.launch_run("migrate_batches", {"dagster/partition": keys[0]})
        assert ui.wait_for_run(synced) == "SUCCESS"
        for asset, checks in CHECKS.items():
            for check in checks:
                [execution] = ui.check_executions(asset, check, synced)
                assert execution["status"] == "SUCCEEDED", (check, execution)
                assert execution["evaluation"]["success"], (check, execution)

        # The next batch fails: Stripe refuses the key (no automatic run retry for it).
        emulator.configure(api_keys=["sk_test_someone_else"])
        failed = ui.launch_run(
            "migrate_batches", {"dagster/partition": keys[1], "dagster/max_retries": "0"}
        )
        assert ui.wait_for_run(failed) == "FAILURE"
        emulator.configure(api_keys=None)
        assert ui.partitions("stripe_products")["failedPartitions"] == [keys[1]]

        # The last batch is stopped from the UI midway: what Stripe made is recorded.
        emulator.configure(latency_ms=500)
        stopped = ui.launch_run(
            "migrate_batches", {"dagster/partition": keys[2], "dagster/max_retries": "0"}
        )
        stop_after_the_first_create(ui, emulator, stopped)
        assert ui.wait_for_run(stopped) == "CANCELED"
        emulator.configure(latency_ms=0)
        made = {p["metadata"]["cms_id"] for p in stripe_state(pipeline_env.emulator_url)[0]}
        rows = table.rows()
        assert 4 < len(made) < 8, made  # the first batch's 4, and some but not all of these
        assert all(rows[cms_id]["stripe_product_id"] == f"cms_{cms_id}" for cms_id in made)

        # Backfill the failed and the missing batch, as the UI's "failed and missing" does.
        launched = ui.graphql(
            LAUNCH_PARTITION_BACKFILL_MUTATION,
            backfillParams={
                "partitionNames": keys[1:],
                "assetSelection": [{"path": [asset]} for asset in BATCH_ASSETS],
            },
        )["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill = ui.wait_for_backfill(launched["backfillId"])
        assert backfill["status"] == "COMPLETED_SUCCESS", backfill
        assert {run["status"] for run in backfill["runs"]} == {"SUCCESS"}
        for asset in BATCH_ASSETS:
            statuses = ui.partitions(asset)
            assert sorted(statuses["materializedPartitions"]) == sorted(keys), asset
            assert statuses["failedPartitions"] == [], asset

        assert ui.wait_for_run(ui.launch_run("report")) == "SUCCESS"
        # The latest run of each batch: 4 created, 4 created, and what the stop left to make.
        made_before_the_stop = len(made) - 4
        look_in_a_browser(ui, artifacts_dir(), created=4 + 4 + (4 - made_before_the_stop))

    products, _ = stripe_state(pipeline_env.emulator_url)
    assert sorted(p["metadata"]["cms_id"] for p in products) == sorted(table.rows())
    assert {row["sync_status"] for row in table.rows().values()} == {"synced"}


def stop_after_the_first_create(ui: DagsterUI, emulator, run_id: str) -> None:
    """Terminate the run, as its "Terminate" button does, once it has made one product."""
    before = sum(1 for e in emulator.requests() if (e["method"], e["path"]) == CREATE)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while sum(1 for e in emulator.requests() if (e["method"], e["path"]) == CREATE) == before:
        assert time.monotonic() < deadline, "the run never created a product"
        time.sleep(0.05)
    answer = ui.graphql(TERMINATE_RUN_JOB_MUTATION, runId=run_id)["terminateRun"]
    assert answer["__typename"] == "TerminateRunSuccess", answer


def assert_code_location_loads_everything(ui: DagsterUI) -> None:
    [entry] = ui.graphql(CODE_LOCATION)["workspaceOrError"]["locationEntries"]
    location = entry["locationOrLoadError"]
    assert (entry["name"], entry["loadStatus"]) == ("stripe_sync", "LOADED")
    assert location["__typename"] == "RepositoryLocation", location
    [repository] = location["repositories"]
    nodes = {tuple(n["assetKey"]["path"]): n for n in repository["assetNodes"]}
    assert {path: (node["groupName"], node["kinds"]) for (path,), node in nodes.items()} == {
        asset: (GROUP, [kind]) for asset, kind in KINDS.items()
    }
    checks = {
        path: {c["name"] for c in node["assetChecksOrError"]["checks"]}
        for (path,), node in nodes.items()
        if node["assetChecksOrError"]["checks"]
    }
    assert checks == CHECKS
    assert {s["name"] for s in repository["sensors"]} == SENSORS
    assert {s["name"] for s in repository["schedules"]} == SCHEDULES


def look_in_a_browser(ui: DagsterUI, screenshots: Path, *, created: int) -> None:
    """The group's asset graph shows the five assets, each with its kind; the report's page
    shows its counts table."""
    ui.graphql("mutation { setNuxSeen }")  # the community sign-up dialog would cover the page
    screenshots.mkdir(parents=True, exist_ok=True)
    chromium = os.environ.get("STRIPE_SYNC_TEST_CHROMIUM") or "/usr/bin/chromium"
    assert os.access(chromium, os.X_OK), f"no browser at {chromium}: apt-get install chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            # The group's own page: were the assets in another group, it would show none.
            page.goto(f"{ui.url}/locations/stripe_sync/asset-groups/{GROUP}")
            expect(page).to_have_title(f"Asset groups | {GROUP}", timeout=30_000)
            expect(page.get_by_text(GROUP, exact=True).first).to_be_visible()  # the heading
            graph = page.locator("svg foreignObject")  # the lineage canvas's nodes
            for asset, kind in KINDS.items():
                node = graph.filter(has=page.get_by_text(asset, exact=True))
                expect(node).to_be_visible(timeout=30_000)
                # The kind as Dagster draws it below the node ("Postgres"), whatever its case.
                expect(node.get_by_text(re.compile(f"^{kind}$", re.IGNORECASE))).to_be_visible()
            _settle(page)
            page.screenshot(path=screenshots / "asset-graph.png")

            page.goto(f"{ui.url}/assets/migration_report")
            # The report's Markdown table (innermost: the metadata list is a table too).
            report = page.locator("table:not(:has(table))").filter(
                has=page.get_by_role("columnheader", name="orphaned", exact=True)
            )
            expect(report).to_be_visible(timeout=30_000)
            expect(report.get_by_role("columnheader", name="created", exact=True)).to_be_visible()
            expect(report.get_by_role("cell", name=str(created), exact=True)).to_be_visible()
            report.scroll_into_view_if_needed()
            _settle(page)
            page.screenshot(path=screenshots / "migration-report.png")
        finally:
            browser.close()
    for name in ("asset-graph.png", "migration-report.png"):
        assert (screenshots / name).stat().st_size > 10_000, name


def artifacts_dir() -> Path:
    return Path(os.environ.get("STRIPE_SYNC_TEST_ARTIFACTS") or REPO_ROOT / "artifacts") / "ui"


def _settle(page: Page) -> None:
    """Let the page finish drawing (fonts, the graph's layout) before a screenshot."""
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(500)
