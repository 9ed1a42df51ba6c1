"""The stripe-sync command line."""

from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess
import sys
import time
import types
import urllib.error
import urllib.request

import click
import pytest
import yaml
from click.testing import CliRunner

from stripe_sync.cli import _Invocation, _ui_hint, main
from stripe_sync.operations.instance import dagster_home
from stripe_sync.settings.loader import load_settings
from stripe_sync_tests.conftest import free_port, stop_process_group
from stripe_sync_tests.e2e.test_ui import DagsterUI


def test_help_lists_emulator() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    assert "emulator" in result.output


def test_emulator_options_reach_config_and_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every option lands in EmulatorConfig / serve() under the emulator's names."""
    calls: list[tuple] = []

    class FakeConfig:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    fake = types.ModuleType("stripe_sync.emulator")
    fake.EmulatorConfig = FakeConfig
    fake.serve = lambda host, port, config, state_file: calls.append(
        (host, port, config, state_file)
    )
    monkeypatch.setitem(sys.modules, "stripe_sync.emulator", fake)

    result = CliRunner().invoke(
        main,
        [
            "emulator",
            "--host",
            "0.0.0.0",
            "--port",
            "4242",
            "--latency-ms",
            "5",
            "--jitter-ms",
            "2.5",
            "--rate-limit",
            "10",
            "--endpoint-rate-limit",
            "3",
            "--fault-rate",
            "0.1",
            "--seed",
            "7",
            "--search-delay-s",
            "0.5",
            "--state-file",
            "state.json",
            "--livemode",
        ],
    )
    assert result.exit_code == 0, result.output
    [(host, port, config, state_file)] = calls
    assert (host, port, state_file) == ("0.0.0.0", 4242, pathlib.Path("state.json"))
    assert config.kwargs == {
        "latency_ms": 5.0,
        "latency_jitter_ms": 2.5,
        "rate_limit": 10.0,
        "endpoint_rate_limit": 3.0,
        "fault_rate": 0.1,
        "seed": 7,
        "search_delay_s": 0.5,
        "livemode": True,
    }


def _stripe_sync_command() -> list[str]:
    script = pathlib.Path(sys.executable).with_name("stripe-sync")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "stripe_sync.cli"]


def test_emulator_subprocess_serves_and_stops_on_sigterm(tmp_path: pathlib.Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*_stripe_sync_command(), "emulator", "--port", str(port)],
        cwd=tmp_path,  # no stray .env
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/account",
            headers={"Authorization": "Bearer sk_test_x"},
        )
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    status = response.status
                    break
            except urllib.error.HTTPError as exc:
                status = exc.code
                break
            except OSError:
                time.sleep(0.1)
        if status is None:
            proc.kill()
            output = proc.communicate(timeout=5)[0].decode(errors="replace")
            pytest.fail(f"emulator never answered on port {port}; output:\n{output}")
        assert status == 200

        proc.send_signal(signal.SIGTERM)
        try:
            output = proc.communicate(timeout=10)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("emulator did not exit within 10 s of SIGTERM")
        assert proc.returncode == 0, output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def test_the_ui_hint_is_a_command_that_serves_the_runs_from_anywhere(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "shop"  # no pyproject.toml or workspace.yaml here
    project.mkdir()
    monkeypatch.chdir(project)
    home = dagster_home(load_settings())
    with click.Context(main, obj=_Invocation(config_file=None)):
        command = re.search(r"`(.+)`", _ui_hint(home)).group(1)
    log = tmp_path / "dagster-dev.log"
    port = free_port()

    assert command.startswith(f"cd {project} && ")
    with log.open("w") as output:
        process = subprocess.Popen(
            f"{command} -h 127.0.0.1 -p {port}",
            shell=True,
            cwd=tmp_path,  # somewhere else
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        DagsterUI(f"http://127.0.0.1:{port}", process, log).wait_until_serving()
    finally:
        stop_process_group(process)


def test_a_new_dagster_home_gets_the_projects_instance_settings_wherever_the_command_runs(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # not the repository: no dagster.yaml here

    home = dagster_home(load_settings())

    instance = yaml.safe_load((home / "dagster.yaml").read_text())
    assert {"run_coordinator", "concurrency", "run_retries"} <= set(instance)


def test_the_ui_hint_names_the_settings_file_given_with_config(tmp_path: pathlib.Path) -> None:
    settings_file = tmp_path / "shop" / "stripe_sync.yaml"

    with click.Context(main, obj=_Invocation(config_file=settings_file)):
        hint = _ui_hint(tmp_path / ".dagster_home")

    assert f"STRIPE_SYNC_CONFIG={settings_file} " in hint
