"""The Dagster UI: `dagster dev` on the pipeline's code location, in a session of its own, so
that its webserver, daemon and code servers are stopped together and none outlives the
command."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

import yaml

# The code location as the repository's workspace.yaml names it, written into the Dagster
# home: the repository's file is not part of an installed package.
WORKSPACE = {
    "load_from": [
        {
            "python_module": {
                "module_name": "stripe_sync.definitions",
                "location_name": "stripe_sync",
            }
        }
    ]
}
WORKSPACE_FILE = "workspace.yaml"  # in the Dagster home
HOST = "127.0.0.1"
READY_TIMEOUT_S = 120.0
# How long the webserver, the daemon and the code servers get to shut down after SIGTERM
# before SIGKILL (dagster dev itself would wait 60 s for each).
STOP_TIMEOUT_S = 30.0
_POLL_S = 0.2


def serve_dagster_ui(
    dagster_home: Path,
    port: int,
    environment: Mapping[str, str],
    log: Path,
    *,
    cwd: Path,
    say: Callable[[str], None] = print,
    stop_requested: Callable[[], bool],
) -> str | None:
    """Serve the UI on `port` (another free one if it is taken) until `stop_requested()`;
    the code location loads its settings from `environment` and the `.env` and project file
    of `cwd`.
    Returns why dagster dev ended before it was asked to stop, None when it served till then."""
    if not _is_free(port):
        taken, port = port, _any_free_port()
        say(f"port {taken} is taken: the UI uses {port}")
    url = f"http://{HOST}:{port}"
    say(f"starting dagster dev (its log: {log})")
    process = _start_dagster_dev(dagster_home, port, environment, log, cwd)
    try:
        failure = _wait_until_serving(process, url, log, stop_requested)
        if failure is None and not stop_requested():
            say(f"Dagster UI: {url}  (Ctrl+C stops it)")
            while not stop_requested() and process.poll() is None:
                time.sleep(_POLL_S)
            if process.poll() is not None:
                failure = _ended_by_itself(process, log)
    finally:
        _stop_process_group(process)
    return failure


def workspace_file(dagster_home: Path) -> Path:
    """The workspace file in the Dagster home, written: `dagster dev -w` on it serves the
    pipeline's code location from any directory, as `stripe_sync`."""
    workspace = dagster_home / WORKSPACE_FILE
    workspace.write_text(yaml.safe_dump(WORKSPACE))
    return workspace


def _start_dagster_dev(
    dagster_home: Path, port: int, environment: Mapping[str, str], log: Path, cwd: Path
) -> subprocess.Popen:
    workspace = workspace_file(dagster_home)
    command = [
        str(Path(sys.executable).with_name("dagster")),
        "dev",
        "-w",
        str(workspace),
        "-h",
        HOST,
        "-p",
        str(port),
    ]
    # Dagster needs its home as an absolute path.
    env = {**environment, "DAGSTER_HOME": str(dagster_home)}
    with log.open("w") as output:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            # Its own session: Ctrl+C in the terminal reaches this command only, which then
            # stops the whole group.
            start_new_session=True,
        )


def _wait_until_serving(
    process: subprocess.Popen, url: str, log: Path, stop_requested: Callable[[], bool]
) -> str | None:
    """None once the webserver answers (or a stop is asked for), else why it never will."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not stop_requested():
        if process.poll() is not None:
            return _ended_by_itself(process, log)
        with (
            contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError),
            urllib.request.urlopen(f"{url}/server_info", timeout=5),
        ):
            return None
        if time.monotonic() > deadline:
            return f"the Dagster UI did not answer within {READY_TIMEOUT_S:.0f} s: see {log}"
        time.sleep(_POLL_S)
    return None


def _ended_by_itself(process: subprocess.Popen, log: Path) -> str:
    return f"dagster dev ended by itself (exit code {process.returncode}): see {log}"


def _stop_process_group(process: subprocess.Popen, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Stop `process` (dagster dev, the leader of a session of its own) and all of its
    group within `timeout_s`; SIGKILL what is left then, or at once if interrupted."""
    deadline = time.monotonic() + timeout_s
    try:
        # dagster dev first: it shuts its webserver and daemon down, and they their code
        # servers. Signalled all at once, the webserver and daemon restart a code server
        # that stops before them.
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout_s)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # anything it left behind
        while _group_alive(process) and time.monotonic() < deadline:
            time.sleep(_POLL_S)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _group_alive(process: subprocess.Popen) -> bool:
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    return True


def _is_free(port: int) -> bool:
    with socket.socket() as probe:
        # As the webserver binds: a port whose last connections wait out TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _any_free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]
