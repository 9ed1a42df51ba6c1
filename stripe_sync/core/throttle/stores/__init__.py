"""Where a throttle's shared state lives: one module per kind of store.

Each store keeps, per namespace, the 429 penalty (level, penalty_at), each endpoint's
theoretical arrival time and the booked global starts, and changes them atomically with
the functions of `..policy`. Every operation is one unit the throttle may retry: a store
raises a `CatalogFailure` classified by `stripe_sync.core.database_errors`, and lets go of a
connection that broke.
"""

from __future__ import annotations

from typing import Protocol

from stripe_sync.core.throttle.policy import Policy, Reservation


class Store(Protocol):
    # True when the store's clock is this machine's time.time() (no offset to estimate).
    uses_local_clock: bool

    def set_up(self) -> None: ...  # its tables, if it has any
    def reserve(self, namespace: str, endpoint: str, policy: Policy) -> Reservation: ...
    def penalize(self, namespace: str, policy: Policy) -> None: ...
    def share(self, namespace: str, policy: Policy) -> float: ...
    def close(self) -> None: ...
