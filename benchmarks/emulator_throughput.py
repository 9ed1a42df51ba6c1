"""How many requests per second the Stripe emulator serves with no latency.

The emulator runs as its own process (`stripe-sync emulator`), as in a benchmark of the
pipeline; this process drives it over keep-alive connections with a realistic mix:
product creates with a default price, retrieves, list pages and product updates.

    python benchmarks/emulator_throughput.py [--seconds 10] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from stripe_sync.emulator import EmulatorControl

HEADERS = {"Authorization": "Bearer sk_test_bench"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_emulator(port: int, *options: str) -> subprocess.Popen:
    """`stripe-sync emulator` on `port` with more command-line options, once its control API
    answers (whichever keys it takes: `--livemode` refuses test keys)."""
    executable = shutil.which("stripe-sync") or str(Path(sys.executable).parent / "stripe-sync")
    process = subprocess.Popen(
        [executable, "emulator", "--port", str(port), *options], stdout=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            EmulatorControl(f"http://127.0.0.1:{port}").config()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the emulator did not start")


async def drive(base_url: str, seconds: float, connections: int) -> tuple[int, dict[int, int]]:
    counter = itertools.count()
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < deadline:
            n = next(counter)
            # Reads and updates target a product created a few rounds earlier.
            product_id = f"bench_{n}" if n % 4 == 0 else f"bench_{max(n // 4 - connections, 0) * 4}"
            match n % 4:
                case 0:
                    request = session.post(
                        f"{base_url}/v1/products",
                        data={
                            "id": product_id,
                            "name": f"Product {n}",
                            "metadata[cms_id]": str(n),
                            "default_price_data[currency]": "eur",
                            "default_price_data[unit_amount]": "1250",
                        },
                    )
                case 1:
                    request = session.get(f"{base_url}/v1/products/{product_id}")
                case 2:
                    request = session.get(f"{base_url}/v1/products", params={"limit": "10"})
                case _:
                    request = session.post(
                        f"{base_url}/v1/products/{product_id}", data={"description": "x"}
                    )
            async with request as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(headers=HEADERS, connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(connections)))
    return sum(statuses.values()), statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    port = free_port()
    emulator = start_emulator(port)
    try:
        started = time.monotonic()
        total, statuses = asyncio.run(
            drive(f"http://127.0.0.1:{port}", args.seconds, args.connections)
        )
        elapsed = time.monotonic() - started
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
    print(f"requests: {total} in {elapsed:.1f} s over {args.connections} connections")
    print(f"statuses: {dict(sorted(statuses.items()))}")
    print(f"throughput: {total / elapsed:.0f} requests/s")


if __name__ == "__main__":
    main()
