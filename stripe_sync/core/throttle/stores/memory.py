"""This process only (all its threads share `MEMORY`): tests and single-process runs."""

from __future__ import annotations

import threading
import time

from stripe_sync.core.throttle.policy import (
    Policy,
    Reservation,
    book,
    gaps,
    multiplier,
    penalized,
    retention,
)


class MemoryStore:
    uses_local_clock = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict[str, tuple[float, float]] = {}  # namespace -> (level, penalty_at)
        self._tats: dict[tuple[str, str], float] = {}
        self._booked: dict[str, list[float]] = {}

    def set_up(self) -> None:
        pass

    def reserve(self, namespace: str, endpoint: str, policy: Policy) -> Reservation:
        with self._lock:
            now = time.time()
            level, at = self._state.get(namespace, (1.0, 0.0))
            global_gap, endpoint_gap = gaps(policy, multiplier(level, at, now, policy))
            keep_after = now - retention(global_gap)
            booked = [t for t in self._booked.get(namespace, []) if t > keep_after]
            start = book(now, self._tats.get((namespace, endpoint), 0.0), booked, global_gap)
            booked.append(start)
            booked.sort()
            self._booked[namespace] = booked
            self._tats[(namespace, endpoint)] = start + endpoint_gap
            return Reservation(now, start)

    def penalize(self, namespace: str, policy: Policy) -> None:
        with self._lock:
            level, at = self._state.get(namespace, (1.0, 0.0))
            self._state[namespace] = penalized(level, at, time.time(), policy)

    def share(self, namespace: str, policy: Policy) -> float:
        with self._lock:
            level, at = self._state.get(namespace, (1.0, 0.0))
            return multiplier(level, at, time.time(), policy)

    def close(self) -> None:
        pass


MEMORY = MemoryStore()
