"""A local, stateful Stripe for tests and the demo (products, prices, account).

Faithful to `STRIPE_FACTS.md`: Stripe's wire format, errors, idempotency, list order,
eventually consistent search, and rate limits, with knobs for latency and faults.

    with run_emulator(EmulatorConfig(latency_ms=150)) as base_url:
        client = stripe.StripeClient("sk_test_x", base_addresses={"api": base_url})
        EmulatorControl(base_url).requests()
"""

from stripe_sync.emulator.control import EmulatorControl
from stripe_sync.emulator.knobs import EmulatorConfig
from stripe_sync.emulator.server import Emulator, run_emulator, serve

__all__ = ["Emulator", "EmulatorConfig", "EmulatorControl", "run_emulator", "serve"]
