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
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Self

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


# ------------------------------------------------------------------ the algorithm
# Pure functions on plain numbers; the SQL and memory stores call them inside their lock,
# and the Redis Lua script below is a line-for-line copy.


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


def _retention(global_gap: float) -> float:
    """Booked starts older than this (s) can't matter any more (book looks 2 gaps back)."""
    return 2 * global_gap + 1.0


def gaps(policy: Policy, share: float) -> tuple[float, float]:
    """Seconds between two global starts and between two starts on one endpoint."""
    window = 1.0 + policy.window_guard
    return window / (policy.global_rate * share), window / (policy.endpoint_rate * share)


# ------------------------------------------------------------------ stores


class _Store(Protocol):
    def reserve(self, namespace: str, endpoint: str, policy: Policy) -> Reservation: ...
    def penalize(self, namespace: str, policy: Policy) -> None: ...
    def share(self, namespace: str, policy: Policy) -> float: ...
    def close(self) -> None: ...


class _MemoryStore:
    """This process only (all its threads share `_MEMORY`); for tests and single-process runs."""

    uses_local_clock = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict[str, list[float]] = {}  # namespace -> [level, penalty_at]
        self._tats: dict[tuple[str, str], float] = {}
        self._booked: dict[str, list[float]] = {}

    def reserve(self, namespace: str, endpoint: str, policy: Policy) -> Reservation:
        with self._lock:
            now = time.time()
            level, at = self._state.get(namespace, (1.0, 0.0))
            global_gap, endpoint_gap = gaps(policy, multiplier(level, at, now, policy))
            keep_after = now - _retention(global_gap)
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
            self._state[namespace] = list(penalized(level, at, time.time(), policy))

    def share(self, namespace: str, policy: Policy) -> float:
        with self._lock:
            level, at = self._state.get(namespace, (1.0, 0.0))
            return multiplier(level, at, time.time(), policy)

    def close(self) -> None:
        pass


_MEMORY = _MemoryStore()


class _SqlStore:
    """The algorithm in one transaction per call; subclasses supply connection and lock.

    Tables: <prefix>state (namespace, level, penalty_at), <prefix>endpoint (namespace,
    endpoint, tat) and <prefix>slot (namespace, t), the booked global starts.
    """

    param = "?"
    prefix = "throttle_"

    def __init__(self) -> None:
        self._local = threading.local()
        self._all: list[Any] = []
        self._all_lock = threading.Lock()

    # --- per subclass
    def _connect(self) -> Any:
        raise NotImplementedError

    def _begin_locked(self, cur: Any, namespace: str) -> tuple[float, float, float]:
        """Start the transaction holding the namespace's lock; (now, level, penalty_at)."""
        raise NotImplementedError

    # --- shared
    def _conn(self) -> Any:
        # One connection per thread, and a fresh one in a forked child.
        if getattr(self._local, "pid", None) != os.getpid():
            self._local.conn = self._connect()
            self._local.pid = os.getpid()
            with self._all_lock:
                self._all.append(self._local.conn)
        return self._local.conn

    def _q(self, sql: str) -> str:
        return sql.replace("{p}", self.prefix).replace("?", self.param)

    def _transaction(self, namespace: str, body) -> Any:
        conn = self._conn()
        cur = conn.cursor()
        try:
            now, level, at = self._begin_locked(cur, namespace)
            result = body(cur, now, level, at)
            conn.commit()
            return result
        except BaseException:
            conn.rollback()
            raise
        finally:
            cur.close()

    def reserve(self, namespace: str, endpoint: str, policy: Policy) -> Reservation:
        def body(cur: Any, now: float, level: float, at: float) -> Reservation:
            global_gap, endpoint_gap = gaps(policy, multiplier(level, at, now, policy))
            cur.execute(
                self._q("SELECT tat FROM {p}endpoint WHERE namespace = ? AND endpoint = ?"),
                (namespace, endpoint),
            )
            row = cur.fetchone()
            tat = row[0] if row else 0.0
            cur.execute(
                self._q("SELECT t FROM {p}slot WHERE namespace = ? AND t > ? ORDER BY t"),
                (namespace, max(now, tat) - 2 * global_gap),
            )
            start = book(now, tat, [r[0] for r in cur.fetchall()], global_gap)
            cur.execute(
                self._q("INSERT INTO {p}slot (namespace, t) VALUES (?, ?)"), (namespace, start)
            )
            cur.execute(
                self._q(
                    "INSERT INTO {p}endpoint (namespace, endpoint, tat) VALUES (?, ?, ?) "
                    "ON CONFLICT (namespace, endpoint) DO UPDATE SET tat = excluded.tat"
                ),
                (namespace, endpoint, start + endpoint_gap),
            )
            cur.execute(
                self._q("DELETE FROM {p}slot WHERE namespace = ? AND t < ?"),
                (namespace, now - _retention(global_gap)),
            )
            return Reservation(now, start)

        return self._transaction(namespace, body)

    def penalize(self, namespace: str, policy: Policy) -> None:
        def body(cur: Any, now: float, level: float, at: float) -> None:
            new_level, new_at = penalized(level, at, now, policy)
            if (new_level, new_at) != (level, at):
                cur.execute(
                    self._q("UPDATE {p}state SET level = ?, penalty_at = ? WHERE namespace = ?"),
                    (new_level, new_at, namespace),
                )

        self._transaction(namespace, body)

    def share(self, namespace: str, policy: Policy) -> float:
        return self._transaction(
            namespace, lambda cur, now, level, at: multiplier(level, at, now, policy)
        )

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                with contextlib.suppress(Exception):  # another thread's, maybe broken
                    conn.close()
            self._all.clear()
        self._local = threading.local()


class _SqliteStore(_SqlStore):
    """A SQLite file: every process on this machine; time.time() is the one clock."""

    uses_local_clock = True

    def __init__(self, path: str):
        super().__init__()
        if not path or path == ":memory:":
            raise ValueError("a SQLite throttle store must be a file every process can open")
        self.path = path
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = self._conn()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(
            self._q(
                "BEGIN IMMEDIATE;"
                "CREATE TABLE IF NOT EXISTS {p}state (namespace TEXT PRIMARY KEY,"
                " level REAL NOT NULL, penalty_at REAL NOT NULL);"
                "CREATE TABLE IF NOT EXISTS {p}endpoint (namespace TEXT NOT NULL,"
                " endpoint TEXT NOT NULL, tat REAL NOT NULL, PRIMARY KEY (namespace, endpoint));"
                "CREATE TABLE IF NOT EXISTS {p}slot (namespace TEXT NOT NULL, t REAL NOT NULL);"
                "CREATE INDEX IF NOT EXISTS {p}slot_namespace_t ON {p}slot (namespace, t);"
                "COMMIT;"
            )
        )

    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode, so BEGIN IMMEDIATE below is the only transaction control.
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 60000")
        # WAL without an fsync per commit: still never corrupt, and a throttle's state
        # is worth nothing after a power cut anyway.
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def _begin_locked(self, cur: Any, namespace: str) -> tuple[float, float, float]:
        cur.execute("BEGIN IMMEDIATE")  # the database's write lock, until COMMIT
        now = time.time()  # read under the lock, so bookings are in clock order
        cur.execute(
            self._q("SELECT level, penalty_at FROM {p}state WHERE namespace = ?"), (namespace,)
        )
        row = cur.fetchone()
        if row is None:
            cur.execute(
                self._q("INSERT INTO {p}state (namespace, level, penalty_at) VALUES (?, 1.0, 0.0)"),
                (namespace,),
            )
            return now, 1.0, 0.0
        return now, row[0], row[1]


class _PostgresStore(_SqlStore):
    """PostgreSQL: every machine; the server's clock, a row lock per namespace."""

    param = "%s"
    prefix = "stripe_sync_throttle_"

    def __init__(self, url: str):
        import psycopg  # noqa: F401 - fail early if missing

        super().__init__()
        self.url = url
        conn = self._conn()
        with conn.cursor() as cur:
            # Serialize the DDL: concurrent CREATE TABLE IF NOT EXISTS can still collide.
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('stripe_sync_throttle_ddl'))")
            cur.execute(
                self._q(
                    "CREATE TABLE IF NOT EXISTS {p}state (namespace text PRIMARY KEY,"
                    " level double precision NOT NULL, penalty_at double precision NOT NULL)"
                )
            )
            cur.execute(
                self._q(
                    "CREATE TABLE IF NOT EXISTS {p}endpoint (namespace text NOT NULL,"
                    " endpoint text NOT NULL, tat double precision NOT NULL,"
                    " PRIMARY KEY (namespace, endpoint))"
                )
            )
            cur.execute(
                self._q(
                    "CREATE TABLE IF NOT EXISTS {p}slot (namespace text NOT NULL,"
                    " t double precision NOT NULL)"
                )
            )
            cur.execute(
                self._q("CREATE INDEX IF NOT EXISTS {p}slot_namespace_t ON {p}slot (namespace, t)")
            )
        conn.commit()

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(self.url)

    def _begin_locked(self, cur: Any, namespace: str) -> tuple[float, float, float]:
        sql = self._q(
            "SELECT level, penalty_at, extract(epoch FROM clock_timestamp())::double precision"
            " FROM {p}state WHERE namespace = %s FOR UPDATE"
        )
        cur.execute(sql, (namespace,))
        row = cur.fetchone()
        if row is None:
            cur.execute(
                self._q(
                    "INSERT INTO {p}state (namespace, level, penalty_at) VALUES (%s, 1.0, 0.0)"
                    " ON CONFLICT (namespace) DO NOTHING"
                ),
                (namespace,),
            )
            cur.execute(sql, (namespace,))
            row = cur.fetchone()
        level, at, now = row
        return now, level, at

    def reserve(self, namespace: str, endpoint: str, policy: Policy) -> Reservation:
        """Two round trips, each a pipeline, so the row lock is held briefly even across
        a network: lock and read everything, then write everything and commit."""
        conn = self._conn()
        # Every booked start book() could need, whatever the share: 2 gaps at the floor.
        lookback = _retention(gaps(policy, policy.floor)[0])
        try:
            with conn.pipeline(), conn.cursor() as lock, conn.cursor() as ep, conn.cursor() as sl:
                lock.execute(
                    self._q(
                        "SELECT level, penalty_at,"
                        " extract(epoch FROM clock_timestamp())::double precision"
                        " FROM {p}state WHERE namespace = %s FOR UPDATE"
                    ),
                    (namespace,),
                )
                # Run after the lock is granted; READ COMMITTED: each sees what's committed.
                ep.execute(
                    self._q("SELECT tat FROM {p}endpoint WHERE namespace = %s AND endpoint = %s"),
                    (namespace, endpoint),
                )
                sl.execute(
                    self._q(
                        "SELECT t FROM {p}slot WHERE namespace = %s"
                        " AND t > extract(epoch FROM clock_timestamp()) - %s ORDER BY t"
                    ),
                    (namespace, lookback),
                )
                state = lock.fetchone()
                tat_row = ep.fetchone()
                booked = [row[0] for row in sl.fetchall()]
            if state is None:  # the namespace's row is new: the plain path creates it
                conn.rollback()
                return super().reserve(namespace, endpoint, policy)
            level, at, now = state
            global_gap, endpoint_gap = gaps(policy, multiplier(level, at, now, policy))
            tat = tat_row[0] if tat_row else 0.0
            start = book(now, tat, booked, global_gap)
            with conn.pipeline(), conn.cursor() as cur:
                cur.execute(
                    self._q("INSERT INTO {p}slot (namespace, t) VALUES (%s, %s)"),
                    (namespace, start),
                )
                cur.execute(
                    self._q(
                        "INSERT INTO {p}endpoint (namespace, endpoint, tat) VALUES (%s, %s, %s)"
                        " ON CONFLICT (namespace, endpoint) DO UPDATE SET tat = excluded.tat"
                    ),
                    (namespace, endpoint, start + endpoint_gap),
                )
                cur.execute(
                    self._q("DELETE FROM {p}slot WHERE namespace = %s AND t < %s"),
                    (namespace, now - _retention(global_gap)),
                )
                conn.commit()
            return Reservation(now, start)
        except BaseException:
            conn.rollback()
            raise


# The same algorithm in Lua, so a Redis reservation is one atomic round trip.
# KEYS[1]: hash {level, at, ep:<endpoint> = tat}; KEYS[2]: sorted set of booked starts.
_REDIS_SCRIPT = """
local op = ARGV[1]
local grate, erate = tonumber(ARGV[3]), tonumber(ARGV[4])
local decrease, floor, recovery = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local cooldown, window = tonumber(ARGV[8]), 1 + tonumber(ARGV[9])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local level = tonumber(redis.call('HGET', KEYS[1], 'level') or '1')
local at = tonumber(redis.call('HGET', KEYS[1], 'at') or '0')
local function fmt(x) return string.format('%.17g', x) end
local function multiplier(t)
  if level >= 1 then return 1 end
  local progress = math.min(1, math.max(0, (t - at) / recovery))
  return level + (1 - level) * progress
end
local share = multiplier(now)
if op == 'share' then return {fmt(now), fmt(share)} end
if op == 'penalize' then
  if now - at >= cooldown then
    redis.call('HSET', KEYS[1], 'level', fmt(math.max(floor, share * decrease)), 'at', fmt(now))
    redis.call('EXPIRE', KEYS[1], math.ceil(recovery + 60))
  end
  return {fmt(now), fmt(multiplier(now))}
end
local ggap, egap = window / (grate * share), window / (erate * share)
local field = 'ep:' .. ARGV[2]
local tat = tonumber(redis.call('HGET', KEYS[1], field) or '0')
local function first_fit(start, booked)
  for i = 2, #booked, 2 do
    local other = tonumber(booked[i])
    if other >= start + ggap then break end
    if other > start - ggap then start = other + ggap end
  end
  return start
end
local earliest = math.max(now, tat)
local booked = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. fmt(earliest - 2 * ggap), '+inf', 'WITHSCORES')
local start = first_fit(earliest, booked)
local prev = nil
for i = 2, #booked, 2 do
  local other = tonumber(booked[i])
  if other >= start then break end
  prev = other
end
if prev ~= nil and prev + ggap >= now and start - prev > 1.5 * ggap and start - prev < 2 * ggap - 1e-6 then
  start = first_fit(prev + 2 * ggap, booked)
end
redis.call('ZADD', KEYS[2], fmt(start), fmt(start))
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. fmt(now - (2 * ggap + 1)))
redis.call('HSET', KEYS[1], field, fmt(start + egap))
local ttl = math.ceil(start - now + recovery + 60)
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return {fmt(now), fmt(start)}
"""


class _RedisStore:
    """Redis: every machine; the server's clock; one Lua script call per operation."""

    def __init__(self, url: str):
        import redis

        self.client = redis.Redis.from_url(url)
        self._script = self.client.register_script(_REDIS_SCRIPT)

    def _run(self, op: str, namespace: str, endpoint: str, policy: Policy) -> tuple[float, float]:
        base = f"stripe_sync:throttle:{{{namespace}}}"  # one hash slot per namespace
        now, value = self._script(
            keys=[f"{base}:state", f"{base}:slots"],
            args=[
                op,
                endpoint,
                repr(policy.global_rate),
                repr(policy.endpoint_rate),
                repr(policy.decrease),
                repr(policy.floor),
                repr(policy.recovery_seconds),
                repr(policy.cooldown),
                repr(policy.window_guard),
            ],
        )
        return float(now), float(value)

    def reserve(self, namespace: str, endpoint: str, policy: Policy) -> Reservation:
        return Reservation(*self._run("reserve", namespace, endpoint, policy))

    def penalize(self, namespace: str, policy: Policy) -> None:
        self._run("penalize", namespace, "", policy)

    def share(self, namespace: str, policy: Policy) -> float:
        return self._run("share", namespace, "", policy)[1]

    def close(self) -> None:
        self.client.close()


# ------------------------------------------------------------------ the public face


class Throttle:
    """The shared budget of one namespace (one Stripe account) in one store."""

    def __init__(self, store: _Store, namespace: str, policy: Policy, *, sleep=time.sleep):
        self._store = store
        self.namespace = namespace
        self.policy = policy
        self._sleep = sleep
        self.rebooked = 0  # starts given up because this process woke too late for them
        # (uncertainty, store clock - time.time()) of recent round trips; see _offset.
        self._samples: deque[tuple[float, float]] = deque(maxlen=64)
        self._lock = threading.Lock()

    def reserve(self, endpoint: str) -> Reservation:
        """Book the next start for `endpoint` without sleeping (acquire = reserve + sleep)."""
        return self._store.reserve(self.namespace, endpoint, self.policy)

    def acquire(self, endpoint: str) -> None:
        """Block until one request to `endpoint` (e.g. "POST /v1/products") fits both the
        global budget and that endpoint's budget. Thread-safe, and shared by every process
        using the same store and namespace.

        A thread that wakes more than `late_after` past its start (a starved CPU, a GC
        pause, a slow store) would send right before the next booked requests, squeezing
        a window: it gives the start up and books again (up to `rebookings` times)."""
        for attempt in range(self.policy.rebookings + 1):
            began = time.time()
            reservation = self.reserve(endpoint)
            start = reservation.start - self._offset(reservation.now, began, time.time())
            wait = start - time.time()
            if wait > 0:
                self._sleep(wait)
            if time.time() - start <= self.policy.late_after:
                return
            with self._lock:
                if attempt < self.policy.rebookings:
                    self.rebooked += 1

    def _offset(self, store_now: float, began: float, ended: float) -> float:
        """Store clock minus time.time(): 0 for stores that use time.time() (SQLite,
        memory); for PostgreSQL and Redis estimated as NTP does, from the round trip with
        the least uncertainty (half its duration) among the recent ones."""
        if getattr(self._store, "uses_local_clock", False):
            return 0.0
        with self._lock:
            self._samples.append(((ended - began) / 2, store_now - (began + ended) / 2))
            return min(self._samples)[1]

    def rate_limited(self) -> None:
        """Stripe answered 429: lower the shared rate for everyone (x `decrease`, at most
        once per `cooldown`, floor `floor` of the budget); it climbs back linearly to 100%
        over `recovery_seconds` without a new 429."""
        self._store.penalize(self.namespace, self.policy)

    @property
    def share(self) -> float:
        """The share of the budget in force now (1.0 without a recent 429)."""
        return self._store.share(self.namespace, self.policy)

    @property
    def rate(self) -> float:
        """The global rate in force now (after the fraction and any 429 penalty)."""
        return self.policy.global_rate * self.share

    @property
    def endpoint_rate(self) -> float:
        """The per-endpoint rate in force now."""
        return self.policy.endpoint_rate * self.share

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_throttle(
    store_url: str,
    *,
    mode: str,
    namespace: str,
    fraction: float = 0.8,
    global_rate: float | None = None,
    endpoint_rate: float | None = None,
    **tuning: float,
) -> Throttle:
    """store_url: "sqlite:///path/to/throttle.db" (one machine, many processes; SQLAlchemy's
    form, so "sqlite:////abs/path"), "postgresql://…" or "redis://…" (across machines), or
    "memory://" (this process). mode "test"/"live" picks STRIPE_RATE_LIMITS unless
    global_rate/endpoint_rate are given; the budget used is fraction x those. namespace
    separates Stripe accounts (the caller passes a hash, never a key). `tuning` overrides
    the Policy's decrease, floor, recovery_seconds, cooldown, window_guard, late_after,
    rebookings."""
    if mode not in STRIPE_RATE_LIMITS:
        raise ValueError(f"mode must be one of {sorted(STRIPE_RATE_LIMITS)}, not {mode!r}")
    if not 0 < fraction <= 1:
        raise ValueError("fraction must be in (0, 1]")
    if not namespace or namespace.startswith(("sk_", "rk_", "pk_")):
        raise ValueError("namespace must be a non-empty hash of the account, never a key")
    default_global, default_endpoint = STRIPE_RATE_LIMITS[mode]
    policy = Policy(
        global_rate=fraction * (global_rate if global_rate is not None else default_global),
        endpoint_rate=fraction * (endpoint_rate if endpoint_rate is not None else default_endpoint),
        **tuning,
    )
    scheme = store_url.split(":", 1)[0].split("+", 1)[0].lower()
    store: _Store
    if scheme == "sqlite":
        if not store_url.startswith("sqlite:///"):
            raise ValueError(
                "a SQLite store is sqlite:///relative/path or sqlite:////absolute/path"
            )
        store = _SqliteStore(store_url[len("sqlite:///") :])
    elif scheme in ("postgresql", "postgres"):
        store = _PostgresStore("postgresql:" + store_url.split(":", 1)[1])
    elif scheme in ("redis", "rediss", "unix"):
        store = _RedisStore(store_url)
    elif scheme == "memory":
        store = _MEMORY
    else:
        raise ValueError(
            f"unsupported throttle store {scheme!r} (sqlite, postgresql, redis, memory)"
        )
    return Throttle(store, namespace, policy)
