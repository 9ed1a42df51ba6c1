"""Redis: every machine; the server's clock; one call of `reserve.lua` per operation."""

from __future__ import annotations

from importlib.resources import files

from stripe_sync.core.database_errors import DatabaseAt, classify_redis
from stripe_sync.core.retry import CALL_TIMEOUT_S
from stripe_sync.core.throttle.policy import Policy, Reservation

SCRIPT = files("stripe_sync.core.throttle").joinpath("reserve.lua").read_text()


class RedisStore:
    uses_local_clock = False

    def __init__(self, url: str, at: DatabaseAt, *, timeout_s: float = CALL_TIMEOUT_S):
        # On use: redis-py takes a fifth of a second to import, and most users never need it.
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.at = at
        self._errors = redis.RedisError
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            # The throttle retries (the pipeline's one policy): none inside redis-py as well.
            retry=Retry(NoBackoff(), 0),
        )
        self._script = self.client.register_script(SCRIPT)

    def set_up(self) -> None:
        pass  # the script loads itself on first use, on every server it meets

    def _run(self, op: str, namespace: str, endpoint: str, policy: Policy) -> tuple[float, float]:
        base = f"stripe_sync:throttle:{{{namespace}}}"  # one hash slot per namespace
        try:
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
        except self._errors as error:
            raise classify_redis(error, self.at) from None
        return float(now), float(value)

    def reserve(self, namespace: str, endpoint: str, policy: Policy) -> Reservation:
        return Reservation(*self._run("reserve", namespace, endpoint, policy))

    def penalize(self, namespace: str, policy: Policy) -> None:
        self._run("penalize", namespace, "", policy)

    def share(self, namespace: str, policy: Policy) -> float:
        return self._run("share", namespace, "", policy)[1]

    def close(self) -> None:
        self.client.close()
