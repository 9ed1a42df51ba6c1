"""A TCP proxy in front of a test server (PostgreSQL, Redis) that misbehaves on purpose, for
outage tests.

- `cut_rhythm(seed, lifetime_s)`: every connection is cut (both sides closed) after a
  lifetime drawn from a seeded generator, as a flaky network or a pooler restarting does;
- `failover(seconds)`: every open connection is cut and new ones are refused for a while, as a
  database failing over does;
- `down()` / `up()`: the server is away until told otherwise.

The proxy copies bytes in a process of its own, as a network does: in the test's process its
threads would take turns with the pipeline's for the interpreter, and every round trip through
it would last as long as the busiest of them let it. The test steers it over a pipe.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import random
import socket
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection


class FlakyProxy:
    """The test's handle on a proxy process."""

    def __init__(self, upstream: tuple[str, int]):
        context = multiprocessing.get_context("spawn")  # no copy of the test's threads
        self._control, theirs = context.Pipe()
        self._process = context.Process(target=_serve, args=(upstream, theirs), daemon=True)
        self._process.start()
        self._lock = threading.Lock()  # helper threads steer it too (periodic failovers)
        self.port: int = self._control.recv()

    # --- what a test does
    def cut_rhythm(self, seed: int, lifetime_s: tuple[float, float]) -> None:
        """Cut each new connection after a seeded lifetime in `lifetime_s` (min, max)."""
        self._ask("cut_rhythm", seed, *lifetime_s)

    def failover(self, seconds: float) -> None:
        self._ask("failover", seconds)

    def down(self) -> None:
        self._ask("down")

    def up(self) -> None:
        self._ask("up")

    def cut_all(self) -> None:
        self._ask("cut_all")

    @property
    def cuts(self) -> int:
        """Connections cut so far."""
        return self._ask("counts")[0]

    @property
    def refused(self) -> int:
        """Connections refused so far."""
        return self._ask("counts")[1]

    def close(self) -> None:
        with contextlib.suppress(OSError, EOFError):
            self._ask("close")
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()

    def _ask(self, *command: object):
        with self._lock:
            self._control.send(command)
            return self._control.recv()


def _serve(upstream: tuple[str, int], control: Connection) -> None:
    proxy = _Proxy(upstream)
    control.send(proxy.port)
    while True:
        name, *args = control.recv()
        if name == "close":
            proxy.close()
            control.send(None)
            return
        control.send(getattr(proxy, name)(*args))


class _Proxy:
    """The proxy itself: threads, plain sockets; it copies bytes and speaks no protocol."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._refuse_until = 0.0
        self._down = False
        self._rhythm: tuple[random.Random, float, float] | None = None
        self._cuts = 0
        self._refused = 0
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_rhythm(self, seed: int, shortest: float, longest: float) -> None:
        self._rhythm = (random.Random(seed), shortest, longest)

    def failover(self, seconds: float) -> None:
        with self._lock:
            self._refuse_until = time.monotonic() + seconds
        self.cut_all()

    def down(self) -> None:
        self._down = True
        self.cut_all()

    def up(self) -> None:
        self._down = False

    def counts(self) -> tuple[int, int]:
        return self._cuts, self._refused

    def cut_all(self) -> None:
        with self._lock:
            sockets, self._open = list(self._open), set()
            self._cuts += len(sockets) // 2
        for sock in sockets:
            self._close(sock)

    def close(self) -> None:
        self._closed = True
        self._server.close()
        self.cut_all()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self._down or time.monotonic() < self._refuse_until:
                with self._lock:
                    self._refused += 1
                self._close(client)
                continue
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                self._close(client)
                continue
            for sock in (client, server):  # as the client and the server do: no Nagle delays
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._open |= {client, server}
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, target), daemon=True).start()
            if self._rhythm is not None:
                generator, shortest, longest = self._rhythm
                with self._lock:
                    lifetime = generator.uniform(shortest, longest)
                timer = threading.Timer(lifetime, self._cut, args=(client, server))
                timer.daemon = True
                timer.start()

    def _cut(self, client: socket.socket, server: socket.socket) -> None:
        with self._lock:
            if client not in self._open:
                return
            self._open -= {client, server}
            self._cuts += 1
        self._close(client)
        self._close(server)

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        self._close(source)
        self._close(target)

    @staticmethod
    def _close(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()


@contextlib.contextmanager
def flaky_proxy(host: str, port: int) -> Iterator[FlakyProxy]:
    proxy = FlakyProxy((host, port))
    try:
        yield proxy
    finally:
        proxy.close()
