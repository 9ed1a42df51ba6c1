"""The scheduling policy: pure functions on plain numbers.

Every store calls them inside its own lock (the memory store's mutex, a SQL transaction);
`reserve.lua` is their line-for-line copy for Redis.
"""

from __future__ import annotations

from dataclasses import dataclass

# (global, per endpoint) requests/s, STRIPE_FACTS.md "Rate limits"
STRIPE_RATE_LIMITS = {"test": (25.0, 25.0), "live": (100.0, 25.0)}

DECREASE = 0.5  # a 429 multiplies the rate by this
FLOOR = 0.1  # ... but never below this share of the budget
RECOVERY_SECONDS = 10.0  # back to 100% linearly over this long without a new 429
COOLDOWN_SECONDS = 0.5  # further 429s within this long after a decrease are the same overload
WINDOW_GUARD = 0.05  # requests are spaced (1 + guard) / rate apart: tolerates 50 ms of jitter
LATE_AFTER = 0.02  # a thread waking later than this past its start books again ...
REBOOKINGS = 3  # ... at most this many times, then sends late
_EPS = 1e-6  # 1 µs, well above float resolution at epoch seconds (~2e-7)


@dataclass(frozen=True)
class Policy:
    """The shape of the budget: rates (after the fraction) and the 429 response."""

    global_rate: float
    endpoint_rate: float
    decrease: float = DECREASE
    floor: float = FLOOR
    recovery_seconds: float = RECOVERY_SECONDS
    cooldown: float = COOLDOWN_SECONDS
    window_guard: float = WINDOW_GUARD
    late_after: float = LATE_AFTER
    rebookings: int = REBOOKINGS

    def __post_init__(self) -> None:
        if not (self.global_rate > 0 and self.endpoint_rate > 0):
            raise ValueError("rates must be positive")
        if not (0 < self.decrease < 1 and 0 < self.floor <= 1):
            raise ValueError("decrease must be in (0, 1) and floor in (0, 1]")
        if self.recovery_seconds <= 0 or min(self.cooldown, self.window_guard, self.late_after) < 0:
            raise ValueError(
                "recovery_seconds must be positive; cooldown, window_guard, late_after >= 0"
            )


@dataclass(frozen=True)
class Reservation:
    """A booked start, in the store's clock: sleep `delay` seconds, then send."""

    now: float
    start: float

    @property
    def delay(self) -> float:
        return max(0.0, self.start - self.now)


def multiplier(level: float, penalty_at: float, now: float, policy: Policy) -> float:
    """The share of the budget in force at `now`: `level` right after the last decrease,
    rising linearly to 1 over `recovery_seconds`."""
    if level >= 1.0:
        return 1.0
    progress = min(1.0, max(0.0, (now - penalty_at) / policy.recovery_seconds))
    return level + (1.0 - level) * progress


def penalized(level: float, penalty_at: float, now: float, policy: Policy) -> tuple[float, float]:
    """(level, penalty_at) after a 429 at `now`."""
    if now - penalty_at < policy.cooldown:
        return level, penalty_at
    return max(policy.floor, multiplier(level, penalty_at, now, policy) * policy.decrease), now


def _first_fit(start: float, booked: list[float], global_gap: float) -> float:
    for other in booked:
        if other >= start + global_gap:
            break
        if other > start - global_gap:
            start = other + global_gap
    return start


def book(now: float, endpoint_tat: float, booked: list[float], global_gap: float) -> float:
    """The earliest start >= max(now, endpoint_tat) at least `global_gap` from every
    start in `booked` (sorted ascending; those after max(now, endpoint_tat) - 2 gaps
    suffice). One exception: where the endpoint's own spacing would leave a hole of 1.5 to
    2 gaps after the booked start before it, a hole nobody could use, the start moves on
    to leave exactly one gap, which the next request to another endpoint can fill. (Below
    1.5 gaps moving would cost this request more than the hole wastes.)"""
    start = _first_fit(max(now, endpoint_tat), booked, global_gap)
    before = [other for other in booked if other < start]
    if before:
        hole = start - before[-1]
        if before[-1] + global_gap >= now and 1.5 * global_gap < hole < 2 * global_gap - _EPS:
            start = _first_fit(before[-1] + 2 * global_gap, booked, global_gap)
    return start


def retention(global_gap: float) -> float:
    """Booked starts older than this (s) can't matter any more (book looks 2 gaps back)."""
    return 2 * global_gap + 1.0


def gaps(policy: Policy, share: float) -> tuple[float, float]:
    """Seconds between two global starts and between two starts on one endpoint."""
    window = 1.0 + policy.window_guard
    return window / (policy.global_rate * share), window / (policy.endpoint_rate * share)
