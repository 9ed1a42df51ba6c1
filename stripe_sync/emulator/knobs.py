"""The emulator's knobs: latency, rate limits and injected faults, settable at run time."""

from __future__ import annotations

import dataclasses
import random
from collections import deque
from dataclasses import dataclass, field

FAULT_KINDS = ("500", "503", "drop", "stall", "429_burst")


@dataclass
class EmulatorConfig:
    """Everything `POST /_emulator/config` can set. Rates are requests per second."""

    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    # Stripe: 25/s in test mode, 100/s in live mode; None means unlimited.
    rate_limit: float | None = None
    # Per endpoint (method + path template, e.g. `POST /v1/products`); Stripe's default is 25/s.
    endpoint_rate_limit: float | None = None
    # Search has its own, lower limit (20/s in older docs: not verified, so a knob).
    search_rate_limit: float | None = None
    fault_rate: float = 0.0
    fault_kinds: list[str] = field(default_factory=lambda: list(FAULT_KINDS))
    # The endpoints faults strike (e.g. `POST /v1/products/{id}`); None: every endpoint.
    fault_endpoints: list[str] | None = None
    # Share of 500/503/drop faults that strike after the request executed (the client
    # can't tell whether the write happened; its retry must be idempotent).
    fault_after_execution_share: float = 0.5
    stall_seconds: float = 35.0  # longer than stripe-python's and the pipeline's timeouts
    burst_length: int = 5
    seed: int | None = None
    # Stripe indexes for search "normally within a minute": seconds until a write shows.
    search_delay_s: float = 2.0
    idempotency_ttl_s: float = 24 * 3600
    livemode: bool = False
    # Exact keys accepted; None accepts any well-formed key of the account's mode.
    api_keys: list[str] | None = None

    def updated(self, changes: dict) -> EmulatorConfig:
        known = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown emulator setting(s): {', '.join(sorted(unknown))}")
        bad_kinds = set(changes.get("fault_kinds", ())) - set(FAULT_KINDS)
        if bad_kinds:
            raise ValueError(
                f"unknown fault kind(s): {', '.join(sorted(bad_kinds))}; known: {', '.join(FAULT_KINDS)}"
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class SlidingWindowLimiter:
    """At most `rate` accepted requests in any one-second window, as Stripe enforces."""

    def __init__(self, rate: float):
        self.rate = rate
        self._accepted: deque[float] = deque()

    def has_room(self, now: float) -> bool:
        while self._accepted and self._accepted[0] <= now - 1.0:
            self._accepted.popleft()
        return len(self._accepted) < self.rate

    def take(self, now: float) -> None:
        self._accepted.append(now)


@dataclass(frozen=True)
class Fault:
    kind: str
    after_execution: bool


class FaultInjector:
    """Draws faults from a seeded generator: the same seed, the same faults in order."""

    def __init__(self, config: EmulatorConfig):
        self._config = config
        self._random = random.Random(config.seed)
        self._burst_left = 0

    def draw(self, endpoint: str | None = None) -> Fault | None:
        if self._burst_left > 0:
            self._burst_left -= 1
            return Fault("429_burst", after_execution=False)
        config = self._config
        if config.fault_endpoints is not None and endpoint not in config.fault_endpoints:
            return None
        if not config.fault_kinds or self._random.random() >= config.fault_rate:
            return None
        kind = self._random.choice(config.fault_kinds)
        after = self._random.random() < config.fault_after_execution_share
        if kind == "429_burst":
            self._burst_left = config.burst_length - 1
            after = False
        return Fault(kind, after_execution=after and kind in ("500", "503", "drop"))


class Latency:
    """Seconds to wait before answering: fixed plus uniform jitter, seeded like the faults."""

    def __init__(self, config: EmulatorConfig):
        self._config = config
        self._random = random.Random(config.seed)

    def draw(self) -> float:
        config = self._config
        jitter = (
            self._random.uniform(-config.latency_jitter_ms, config.latency_jitter_ms)
            if config.latency_jitter_ms
            else 0.0
        )
        return max(0.0, config.latency_ms + jitter) / 1000.0
