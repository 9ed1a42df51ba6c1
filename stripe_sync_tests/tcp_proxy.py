"""A TCP proxy in front of the test PostgreSQL that misbehaves on purpose, for outage tests.

- `cut_rhythm(seed, lifetime_s)`: every connection is cut (both sides closed) after a
  lifetime drawn from a seeded generator, as a flaky network or a pooler restarting does;
- `failover(seconds)`: every open connection is cut and new ones are refused for a while, as a
  database failing over does;
- `down()` / `up()`: the database is away until told otherwise.

Threads, plain sockets: the proxy copies bytes, it doesn't speak PostgreSQL.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from collections.abc import Iterator


class FlakyProxy:
    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._refuse_until = 0.0
        self._down = False
        self._rhythm: tuple[random.Random, float, float] | None = None
        self.cuts = 0  # connections cut, for the test's figures
        self.refused = 0
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    # --- what a test does
    def cut_rhythm(self, seed: int, lifetime_s: tuple[float, float]) -> None:
        """Cut each new connection after a seeded lifetime in `lifetime_s` (min, max)."""
        self._rhythm = (random.Random(seed), *lifetime_s)

    def failover(self, seconds: float) -> None:
        with self._lock:
            self._refuse_until = time.monotonic() + seconds
        self.cut_all()

    def down(self) -> None:
        self._down = True
        self.cut_all()

    def up(self) -> None:
        self._down = False

    def cut_all(self) -> None:
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            self._close(sock)
        self.cuts += len(sockets) // 2

    def close(self) -> None:
        self._closed = True
        self._server.close()
        self.cut_all()

    # --- the proxy
    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self._down or time.monotonic() < self._refuse_until:
                self.refused += 1
                self._close(client)
                continue
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                self._close(client)
                continue
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
        self.cuts += 1
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
