"""One request budget for every process and thread that calls Stripe with the same account.

`open_throttle(store_url, mode=..., namespace=...)` returns a `Throttle`; call
`acquire("POST /v1/products")` before each attempt and `rate_limited()` after a 429.
The budget (STRIPE_FACTS.md "Rate limits": a global rate and a per-endpoint rate, used
at `fraction`) lives in a store all callers see: a SQLite file (one machine, many
processes), PostgreSQL or Redis (many machines), or `memory://` (this process only).
The namespace separates Stripe accounts; callers pass a hash of the account, never a key,
and the store holds only numbers: timestamps and the 429 penalty.

Algorithm: a reservation scheduler in the spirit of GCRA ("theoretical arrival time").
Each `acquire` atomically (SQLite `BEGIN IMMEDIATE`, a PostgreSQL row lock, a Redis Lua
script) books a start time `s` that is (a) at or after the endpoint's theoretical arrival
time, which then moves to `s + gap(endpoint_rate)`, and (b) at least `gap(global_rate)`
away from every other booked start (the earliest such hole, so a request queued behind a
busy endpoint doesn't hold up requests to other endpoints; see `book`), then sleeps
until `s`. Spacing requests evenly, rather than letting a bucket's burst out at once, is
what keeps every one-second window at or under the budget; `gap(rate)` is
`(1 + window_guard) / rate`, the 5% guard absorbing up to 50 ms of jitter between the
booked start and the arrival at Stripe. A 429 multiplies the namespace's rates (global
and endpoint) by `decrease` (0.5; at most once per `cooldown`, 0.5 s, since one overload
yields a burst of 429s; never below `floor`, 10%), and they climb back linearly to 100%
over `recovery_seconds` (10 s). Time comes from one clock per store: `time.time()` for
SQLite and memory (one machine), the server's clock for PostgreSQL and Redis, so skewed
clients can't disagree; each client maps the server's clock to its own from its fastest
recent round trip, as NTP does. A thread that wakes more than `late_after` (20 ms) past
its start books again rather than send late and crowd the requests booked after it.

Why not pyrate-limiter (4.5, which the project already depends on): its SQLite and
PostgreSQL buckets are sliding-window logs that let a whole second's budget out at once
(Stripe then sees budget + 1 in a window as soon as arrival jitter compresses two
bursts), and its GCRA is stored only in Redis or in-process; in every bucket the rates
are each client's own constructor arguments, not shared state, so a 429 seen by one
process can't lower the rate for the others without a second store of our own and
rebuilding buckets before every call; a Limiter routes an item to one bucket, so a global
and an endpoint budget are two separate acquisitions, the first spent while waiting on the
second, with no atomic "reserve both, sleep until the later"; and a blocked caller polls
instead of holding a reservation, so processes contend with no order. Reproducing those
pieces around it would leave little of the library; the scheduler here is ~60 lines of
Python (`multiplier`, `penalized`, `book`, `Throttle.acquire`) and their Lua twin.

Layout: `policy` (the pure algorithm), `stores/` (one module per store, the SQL
reservation written once for SQLite and PostgreSQL), `reserve.lua` (the Redis twin),
`client` (`Throttle`, `open_throttle`).
"""

from stripe_sync.core.throttle.client import Throttle, open_throttle
from stripe_sync.core.throttle.policy import (
    STRIPE_RATE_LIMITS,
    WINDOW_GUARD,
    Policy,
    Reservation,
    book,
    multiplier,
    penalized,
)

__all__ = [
    "STRIPE_RATE_LIMITS",
    "WINDOW_GUARD",
    "Policy",
    "Reservation",
    "Throttle",
    "book",
    "multiplier",
    "open_throttle",
    "penalized",
]
