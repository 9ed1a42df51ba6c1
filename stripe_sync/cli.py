"""The ``stripe-sync`` command line."""

from __future__ import annotations

import pathlib

import click
from dotenv import load_dotenv


@click.group()
def main() -> None:
    """stripe-sync: move a product catalog into Stripe Products and Prices."""
    # Settings may come from a .env file in the working directory; real environment
    # variables win over it.
    load_dotenv(pathlib.Path.cwd() / ".env", override=False)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=12111, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--latency-ms",
    default=0.0,
    show_default=True,
    type=float,
    help="Fixed latency added to every API request.",
)
@click.option(
    "--jitter-ms",
    default=0.0,
    show_default=True,
    type=float,
    help="Latency jitter: each request waits latency ± up to N ms (uniform).",
)
@click.option(
    "--rate-limit",
    default=None,
    type=float,
    help="Global limit in requests/s (429 beyond it). Default: none.",
)
@click.option(
    "--endpoint-rate-limit",
    default=None,
    type=float,
    help="Per-endpoint limit in requests/s (429 beyond it). Default: none.",
)
@click.option(
    "--fault-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0.0, 1.0),
    help="Probability that a request gets an injected fault.",
)
@click.option("--seed", default=None, type=int, help="Random seed for reproducible faults.")
@click.option(
    "--search-delay-s",
    default=2.0,
    show_default=True,
    type=float,
    help="Seconds before a new or changed object becomes searchable.",
)
@click.option(
    "--state-file",
    default=None,
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    help="Load state from this JSON file at start and save it there on exit.",
)
def emulator(
    host: str,
    port: int,
    latency_ms: float,
    jitter_ms: float,
    rate_limit: float | None,
    endpoint_rate_limit: float | None,
    fault_rate: float,
    seed: int | None,
    search_delay_s: float,
    state_file: pathlib.Path | None,
) -> None:
    """Run the local Stripe emulator (a stateful fake of the Stripe API) until SIGINT/SIGTERM."""
    # Imported here so the CLI loads even where the emulator can't.
    from stripe_sync.testing import EmulatorConfig, serve

    config = EmulatorConfig(
        latency_ms=latency_ms,
        latency_jitter_ms=jitter_ms,
        rate_limit=rate_limit,
        endpoint_rate_limit=endpoint_rate_limit,
        fault_rate=fault_rate,
        seed=seed,
        search_delay_s=search_delay_s,
    )
    serve(host, port, config, state_file)


if __name__ == "__main__":
    main()
