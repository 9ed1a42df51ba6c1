"""`stripe-sync demo --ui`, as a user runs it: the demo, then `dagster dev` serving its runs
with the emulator on its saved state, until Ctrl+C stops all of it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from stripe_sync.emulator import EmulatorConfig, run_emulator
from stripe_sync.operations.demo import DEMO_SECRET_KEY
from stripe_sync_tests.conftest import (
    PIPELINE_ENV_VARS,
    descendants,
    free_port,
    kill_process_tree,
    process_table,
    stripe_state,
    stripe_sync_script,
)
from stripe_sync_tests.e2e.test_ui import DagsterUI

# 60 rows: 55 products and the demo's 5 broken rows, in 2 batches of the demo's one run.
PRODUCTS = 60
VALID_PRODUCTS = 55
# The demo, then dagster dev's start (its code server imports the pipeline) on a busy machine.
UI_TIMEOUT_S = 240.0
STOP_TIMEOUT_S = 60.0
RUNS = "{ runsOrError { ... on Runs { results { jobName status } } } }"
CATALOG_KIND = """
{ assetNodeOrError(assetKey: {path: ["supabase_products"]}) { ... on AssetNode { kinds } } }
"""


def test_demo_ui_serves_the_demos_runs_until_ctrl_c_then_nothing_of_it_is_left(tmp_path):
    demo_dir = tmp_path / "demo"
    output = tmp_path / "demo-ui.out"
    # Started where the user's own project lives: its settings are not the demo's.
    (tmp_path / "stripe_sync.yaml").write_text("catalog:\n  table: catalog_items\n")
    (tmp_path / ".env").write_text(
        "CATALOG_DATABASE_URL=postgresql://shop@127.0.0.1:9/shop\n"
        "STRIPE_API_BASE=http://127.0.0.1:9\n"
    )
    env = {name: value for name, value in os.environ.items() if name not in PIPELINE_ENV_VARS}
    command = [stripe_sync_script(), "demo", "--ui", "--products", str(PRODUCTS)]
    command += ["--dir", str(demo_dir), "--ui-port", str(free_port())]
    with output.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        ui = DagsterUI(wait_for_line(process, output, r"Dagster UI: (\S+)"), process, output)
        emulator_url = wait_for_line(process, output, r"Stripe emulator at (\S+), on its state")
        ui.wait_until_serving()  # the webserver, and the code location loaded

        runs = ui.graphql(RUNS)["runsOrError"]["results"]
        assert [r["status"] for r in runs if r["jobName"] == "migrate_batches"] == ["SUCCESS"]
        # The code location reads the demo's settings: its catalog is the SQLite file.
        assert ui.graphql(CATALOG_KIND)["assetNodeOrError"]["kinds"] == ["sqlite"]
        products, _ = stripe_state(emulator_url, DEMO_SECRET_KEY)
        assert len(products) == VALID_PRODUCTS

        ui_processes = descendants(process.pid)
        for part in ("dagster dev", "dagster_webserver", "dagster._daemon"):
            assert any(part in args for args in ui_processes.values()), (part, ui_processes)

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=STOP_TIMEOUT_S) == 0, output.read_text()
    finally:
        kill_process_tree(process)

    port = re.search(r":(\d+)$", ui.url).group(1)
    left = {
        pid: args
        for pid, (_, args) in process_table().items()
        if ui_processes.get(pid) == args
        or str(tmp_path) in args
        or re.search(rf"(-p|--port)[ =]{port}\b", args)
    }
    assert left == {}
    assert "stopped the Dagster UI and the Stripe emulator" in output.read_text()

    with run_emulator(EmulatorConfig(), state_file=demo_dir / "stripe_emulator.json") as again:
        kept, _ = stripe_state(again, DEMO_SECRET_KEY)
    assert sorted(p["id"] for p in kept) == sorted(p["id"] for p in products)


def wait_for_line(process: subprocess.Popen, output: Path, pattern: str) -> str:
    """The first group of `pattern` in the command's output, once it is printed."""
    deadline = time.monotonic() + UI_TIMEOUT_S
    while not (found := re.search(pattern, output.read_text())):
        assert process.poll() is None, output.read_text()
        assert time.monotonic() < deadline, output.read_text()
        time.sleep(0.2)
    return found.group(1)
