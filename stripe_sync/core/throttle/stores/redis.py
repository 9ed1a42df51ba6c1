"""Redis: every machine; the server's clock; one call of `reserve.lua` per operation."""

from __future__ import annotations

from importlib.resources import files

from stripe_sync.core.throttle.policy import Policy, Reservation

SCRIPT = files("stripe_sync.core.throttle").joinpath("reserve.lua").read_text()


class RedisStore:
    uses_local_clock = False

    def __init__(self, url: str):
        import redis

        self.client = redis.Redis.from_url(url)
        self._script = self.client.register_script(SCRIPT)

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
