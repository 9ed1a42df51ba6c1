"""Keys never leave the process: not in captured output, log files, the Dagster instance
(event logs, run config and tags, anything in DAGSTER_HOME), the reports or the catalog,
including when Stripe rejects a key and says so (its message names the masked key)."""

from __future__ import annotations

import base64
import json
import pathlib
import secrets
import string
import subprocess
from decimal import Decimal

import dagster as dg
from dagster._core.instance.ref import InstanceRef
from dagster._serdes import serialize_value

from stripe_sync.emulator.server import mask_key
from stripe_sync_tests.conftest import stripe_sync_script
from stripe_sync_tests.support.sample_catalog import sample_products


def random_text(length: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


def fake_jwt() -> str:
    """Looks like a Supabase service_role key (header.payload.signature)."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    payload = {
        "iss": "supabase",
        "ref": random_text(20).lower(),
        "role": "service_role",
        "iat": 1700000000,
    }
    return ".".join(
        [
            part(b'{"alg":"HS256","typ":"JWT"}'),
            part(json.dumps(payload).encode()),
            part(secrets.token_bytes(32)),
        ]
    )


def needles(*keys: str) -> dict[str, str]:
    """Each key, its last 8 characters and (Stripe keys) the masked form Stripe's errors use."""
    found = {}
    for key in keys:
        found[key] = key
        found[f"last 8 of {key[:8]}…"] = key[-8:]
        if key.startswith("sk_"):
            found[f"masked {key[:8]}…"] = mask_key(key)
    return found


def dagster_instance_text(dagster_home: pathlib.Path) -> tuple[str, int]:
    """Every run (config, tags) and every event of every run, and the reports (recorded
    without a run), serialized; and the run count."""
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home))) as instance:
        runs = instance.get_runs()
        parts = []
        for run in runs:
            parts.append(serialize_value(instance.get_run_by_id(run.run_id)))
            parts.extend(serialize_value(entry) for entry in instance.all_logs(run.run_id))
        reports = instance.fetch_materializations(dg.AssetKey("migration_report"), limit=100)
        parts.extend(serialize_value(record.event_log_entry) for record in reports.records)
        return "\n".join(parts), len(runs)


def files_text(root: pathlib.Path) -> dict[str, str]:
    """Every file under root (DAGSTER_HOME's SQLite files and ledgers, reports, logs), as text."""
    return {
        str(path.relative_to(root)): path.read_bytes().decode("utf-8", "replace")
        for path in root.rglob("*")
        if path.is_file()
    }


def test_keys_appear_nowhere_even_when_stripe_rejects_one(
    products_table, pipeline_env, emulator, capfd, tmp_path
):
    good_key, wrong_key = f"sk_test_{random_text(24)}", f"sk_test_{random_text(24)}"
    supabase_key = fake_jwt()
    emulator.configure(api_keys=[good_key])
    invalid_row = {"id": "nameless", "name": None, "price": Decimal("1.00"), "currency": "eur"}
    table = products_table([*sample_products(12), invalid_row])
    pipeline_env.use_catalog(table)  # the database URL wins over the Supabase settings below
    pipeline_env.set(
        STRIPE_SECRET_KEY=good_key,
        SUPABASE_URL="http://127.0.0.1:9",
        SUPABASE_SERVICE_ROLE_KEY=supabase_key,
        STRIPE_SYNC_BATCH_SIZE="5",
    )
    captured: list[str] = []

    ok = pipeline_env.migrate(log_level="DEBUG")
    assert ok.succeeded, ok.report_markdown

    # new rows, and a key Stripe rejects: the run fails on its first request
    table.insert(sample_products(20)[12:])
    pipeline_env.set(STRIPE_SECRET_KEY=wrong_key)
    rejected = pipeline_env.migrate(log_level="DEBUG")
    assert not rejected.succeeded
    out, err = capfd.readouterr()
    captured += [out, err]

    # the command line too: pre-flight refuses the wrong key; the good key finishes the job
    def migrate_cli() -> subprocess.CompletedProcess:
        command = [
            stripe_sync_script(),
            "migrate",
            "--log-level",
            "DEBUG",
            "--log-file",
            str(tmp_path / "cli.log"),
        ]
        return subprocess.run(
            command,
            env=pipeline_env.cli_env(),
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )

    refused = migrate_cli()
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "Stripe rejected STRIPE_SECRET_KEY" in refused.stderr
    pipeline_env.set(STRIPE_SECRET_KEY=good_key)
    finished = migrate_cli()
    assert finished.returncode == 0, finished.stdout + finished.stderr
    captured += [refused.stdout, refused.stderr, finished.stdout, finished.stderr]

    # the failing case really happened, and Stripe's message about it was kept (redacted)
    log = emulator.requests()
    assert any(e["status"] == 401 for e in log)  # the backup's read, before any write
    events, runs = dagster_instance_text(pipeline_env.dagster_home)
    assert runs >= 3  # a run of the batches each migration (its report needs none)
    assert "Invalid API Key provided" in events
    catalog = table.rows()
    assert all(
        row["sync_status"] == "synced" for cms_id, row in catalog.items() if cms_id != "nameless"
    )

    haystacks = {
        "captured output": "\n".join(captured),
        "Dagster event log and runs": events,
        "catalog rows": "\n".join(repr(row) for row in catalog.values()),
        "reports": ok.report_markdown
        + json.dumps(ok.report)
        + rejected.report_markdown
        + json.dumps(rejected.report),
        **{f"file {name}": text for name, text in files_text(tmp_path).items()},
    }
    assert pipeline_env.log_file.exists() and (tmp_path / "cli.log").exists()
    assert any(name.startswith("file reports/") for name in haystacks)
    assert any(name.startswith("file dagster_home/") and name.endswith(".db") for name in haystacks)
    leaks = [
        (what, where)
        for what, needle in needles(good_key, wrong_key, supabase_key).items()
        for where, text in haystacks.items()
        if needle in text
    ]
    assert leaks == []
