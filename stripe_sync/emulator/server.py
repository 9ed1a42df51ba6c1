"""The emulator's HTTP server: Stripe's wire format, idempotency, limits and faults.

One request goes through the same steps as at Stripe: authenticate, rate limit, check
parameters, idempotency, execute, answer. Knobs add latency and faults around those
steps. The server is single-threaded asyncio: the account state needs no locks and
latency or stalls cost no threads.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import stripe.params as sp
from aiohttp import web

from stripe_sync.emulator.errors import StripeApiError, invalid_request
from stripe_sync.emulator.knobs import EmulatorConfig, FaultInjector, Latency, SlidingWindowLimiter
from stripe_sync.emulator.params import coerce, decode_form
from stripe_sync.emulator.store import StripeState, new_id

log = logging.getLogger(__name__)

DEFAULT_STRIPE_VERSION = "2026-10-28.endive"
_KEY = re.compile(r"^(sk|rk)_(test|live)_[A-Za-z0-9_]+$")
_MAX_IDEMPOTENCY_KEY_LENGTH = 255

Handler = Callable[[StripeState, dict[str, str], dict, EmulatorConfig], dict]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern
    endpoint: str
    params: type
    handler: Handler


def _route(method: str, template: str, params: type, handler: Handler) -> Route:
    pattern = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$")
    return Route(method, pattern, f"{method} {template}", params, handler)


ROUTES = (
    _route("GET", "/v1/account", sp.AccountRetrieveCurrentParams, lambda s, a, p, c: s.account()),
    _route("POST", "/v1/products", sp.ProductCreateParams, lambda s, a, p, c: s.create_product(p)),
    _route("GET", "/v1/products", sp.ProductListParams, lambda s, a, p, c: s.list_products(p)),
    _route(
        "GET",
        "/v1/products/search",
        sp.ProductSearchParams,
        lambda s, a, p, c: s.search("product", p, delay_s=c.search_delay_s),
    ),
    _route(
        "GET",
        "/v1/products/{id}",
        sp.ProductRetrieveParams,
        lambda s, a, p, c: s.retrieve_product(a["id"]),
    ),
    _route(
        "POST",
        "/v1/products/{id}",
        sp.ProductUpdateParams,
        lambda s, a, p, c: s.update_product(a["id"], p),
    ),
    _route(
        "DELETE",
        "/v1/products/{id}",
        sp.ProductDeleteParams,
        lambda s, a, p, c: s.delete_product(a["id"]),
    ),
    _route("POST", "/v1/prices", sp.PriceCreateParams, lambda s, a, p, c: s.create_price(p)),
    _route("GET", "/v1/prices", sp.PriceListParams, lambda s, a, p, c: s.list_prices(p)),
    _route(
        "GET",
        "/v1/prices/search",
        sp.PriceSearchParams,
        lambda s, a, p, c: s.search("price", p, delay_s=c.search_delay_s),
    ),
    _route(
        "GET",
        "/v1/prices/{id}",
        sp.PriceRetrieveParams,
        lambda s, a, p, c: s.retrieve_price(a["id"]),
    ),
    _route(
        "POST",
        "/v1/prices/{id}",
        sp.PriceUpdateParams,
        lambda s, a, p, c: s.update_price(a["id"], p),
    ),
)


@dataclass
class _Answer:
    status: int
    body: bytes
    headers: dict[str, str]


@dataclass
class _SavedResult:
    fingerprint: str
    path: str
    saved_at: float
    request_id: str
    answer: _Answer | None = None  # None while the first request is in flight


class _Dropped(Exception):
    """The connection is to be closed without an answer."""


class Emulator:
    """One emulated Stripe account behind an aiohttp application."""

    def __init__(self, config: EmulatorConfig | None = None, *, state_file: Path | None = None):
        self.state_file = state_file
        self.state = StripeState()
        self.request_log: list[dict[str, Any]] = []
        self._idempotency: dict[str, _SavedResult] = {}
        self.configure((config or EmulatorConfig()).to_dict())
        if state_file is not None and state_file.exists():
            self.state.load(json.loads(state_file.read_text()))

    # --- control ------------------------------------------------------------------------

    def configure(self, changes: dict) -> EmulatorConfig:
        config = getattr(self, "config", EmulatorConfig()).updated(changes)
        self.config = config
        self.state.livemode = config.livemode
        self._faults = FaultInjector(config)
        self._latency = Latency(config)
        self._global_limit = SlidingWindowLimiter(config.rate_limit) if config.rate_limit else None
        self._endpoint_limits: dict[str, SlidingWindowLimiter] = {}
        self._search_limit = (
            SlidingWindowLimiter(config.search_rate_limit) if config.search_rate_limit else None
        )
        return config

    def reset(self) -> None:
        """Forget objects, idempotency keys and the request log; keep the knobs."""
        self.state.reset()
        self._idempotency.clear()
        self.request_log.clear()
        self.configure({})

    def save(self) -> None:
        if self.state_file is not None:
            tmp = self.state_file.with_suffix(self.state_file.suffix + ".tmp")
            tmp.write_text(json.dumps(self.state.dump()))
            tmp.replace(self.state_file)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024**2)
        app.router.add_route("*", "/_emulator/{action}", self._control)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _control(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        if (request.method, action) == ("POST", "reset"):
            self.reset()
            return web.json_response({"reset": True})
        if (request.method, action) == ("GET", "config"):
            return web.json_response(self.config.to_dict())
        if (request.method, action) == ("POST", "config"):
            try:
                return web.json_response(self.configure(await request.json()).to_dict())
            except (ValueError, TypeError) as error:
                return web.json_response({"error": str(error)}, status=400)
        if (request.method, action) == ("GET", "requests"):
            return web.json_response({"requests": self.request_log})
        if (request.method, action) == ("POST", "save"):
            self.save()
            return web.json_response({"saved": str(self.state_file) if self.state_file else None})
        return web.json_response(
            {"error": f"unknown control request {request.method} {action}"}, status=404
        )

    # --- the Stripe API -----------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        started_at = time.time()
        request_id = new_id("req_", 14)
        idempotency_key = (
            request.headers.get("Idempotency-Key") if request.method == "POST" else None
        )
        entry: dict[str, Any] = {
            "request_id": request_id,
            "method": request.method,
            "path": request.path,
            "endpoint": None,
            "status": None,
            "idempotency_key": idempotency_key,
            "replayed": False,
            "fault": None,
            "started_at": started_at,
            "ended_at": None,
        }
        self.request_log.append(entry)
        try:
            answer = await self._answer(request, request_id, idempotency_key, entry)
        except _Dropped:
            entry["ended_at"] = time.time()
            request.transport.abort()
            raise asyncio.CancelledError from None
        except Exception:
            # An emulator bug: answer like Stripe's own internal error, and say so loudly.
            log.exception("emulator failed on %s %s", request.method, request.path)
            answer = _server_error(500)
        answer.headers["Request-Id"] = request_id
        answer.headers["Stripe-Version"] = request.headers.get(
            "Stripe-Version", DEFAULT_STRIPE_VERSION
        )
        if idempotency_key is not None:
            answer.headers["Idempotency-Key"] = idempotency_key
        entry["status"] = answer.status
        entry["ended_at"] = time.time()
        return web.Response(
            body=answer.body,
            status=answer.status,
            headers=answer.headers,
            content_type="application/json",
        )

    async def _answer(
        self, request: web.Request, request_id: str, idempotency_key: str | None, entry: dict
    ) -> _Answer:
        config = self.config
        latency = self._latency.draw()
        route, path_args = self._find_route(request)
        entry["endpoint"] = route.endpoint if route else None
        early = self._authenticate(request) or (route is None and _unrecognized(request))
        if not early:
            early = self._rate_limit(route, entry["started_at"])
        fault = None if early else self._faults.draw(entry["endpoint"])
        entry["fault"] = fault.kind if fault else None
        if fault and not fault.after_execution:
            if fault.kind == "429_burst":
                early = _rate_limited()
            elif fault.kind in ("500", "503"):
                early = _server_error(int(fault.kind))
            elif fault.kind == "drop":
                await asyncio.sleep(latency)
                raise _Dropped()
        params: dict = {}
        if not early:
            try:
                pairs = (
                    (await request.post()).items()
                    if request.method == "POST"
                    else request.query.items()
                )
                params = coerce(decode_form(pairs), route.params)
            except StripeApiError as error:
                early = _error_answer(error)
        saved = None
        if not early and idempotency_key is not None:
            early, saved = self._claim_idempotency_key(
                idempotency_key, request.path, params, request_id
            )
            if early is not None and early.headers.get("Idempotent-Replayed"):
                entry["replayed"] = True
        await asyncio.sleep(latency)
        if early:
            return early
        if fault and fault.kind == "stall":
            await asyncio.sleep(config.stall_seconds)
        answer = self._execute(route, path_args, params)
        if saved is not None:
            saved.answer = answer
        if fault and fault.after_execution:
            if fault.kind == "drop":
                raise _Dropped()
            return _server_error(int(fault.kind))
        return answer

    def _find_route(self, request: web.Request) -> tuple[Route | None, dict[str, str]]:
        for route in ROUTES:
            if route.method == request.method:
                match = route.pattern.match(request.path)
                if match:
                    return route, match.groupdict()
        return None, {}

    def _authenticate(self, request: web.Request) -> _Answer | None:
        header = request.headers.get("Authorization", "")
        scheme, _, credential = header.partition(" ")
        if scheme.lower() == "basic":
            with contextlib.suppress(ValueError):
                credential = base64.b64decode(credential).decode().partition(":")[0]
        if not credential:
            return _error_answer(
                StripeApiError(
                    401,
                    "You did not provide an API key. You need to provide your API key in the Authorization header, "
                    "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
                    "https://stripe.com/docs/api#authentication for details, or we can help at "
                    "https://support.stripe.com/.",
                )
            )
        config = self.config
        match = _KEY.match(credential)
        valid = (
            match is not None
            and (match.group(2) == "live") == config.livemode
            and (config.api_keys is None or credential in config.api_keys)
        )
        if not valid:
            return _error_answer(
                StripeApiError(401, f"Invalid API Key provided: {mask_key(credential)}")
            )
        return None

    def _rate_limit(self, route: Route, now: float) -> _Answer | None:
        limiters = [self._global_limit]
        if self.config.endpoint_rate_limit:
            limiters.append(
                self._endpoint_limits.setdefault(
                    route.endpoint, SlidingWindowLimiter(self.config.endpoint_rate_limit)
                )
            )
        if route.endpoint.endswith("/search"):
            limiters.append(self._search_limit)
        limiters = [limiter for limiter in limiters if limiter is not None]
        if not all(limiter.has_room(now) for limiter in limiters):
            return _rate_limited()
        for limiter in limiters:
            limiter.take(now)
        return None

    def _claim_idempotency_key(
        self, key: str, path: str, params: dict, request_id: str
    ) -> tuple[_Answer | None, _SavedResult | None]:
        """Replay, refuse, or reserve `key` for this request (Stripe's idempotency layer)."""
        if not 1 <= len(key) <= _MAX_IDEMPOTENCY_KEY_LENGTH:
            return _error_answer(
                invalid_request(
                    f"Idempotent key length is {len(key)}, which is outside accepted lengths. Idempotent Keys "
                    "must be 1-255 characters long. If you're looking for a decent generator, try using a UUID "
                    "defined by IETF RFC 4122."
                )
            ), None
        fingerprint = json.dumps(params, sort_keys=True, default=str)
        saved = self._idempotency.get(key)
        if saved is not None and time.time() - saved.saved_at > self.config.idempotency_ttl_s:
            saved = None
        if saved is None:
            saved = self._idempotency[key] = _SavedResult(
                fingerprint, path, time.time(), request_id
            )
            return None, saved
        if saved.answer is None:
            return _error_answer(
                StripeApiError(
                    409,
                    "There is currently another in-progress request using this Idempotent Key (that probably "
                    f"means you submitted twice, and the other request is still going through): {key}. Please "
                    "try again later.",
                    code="idempotency_key_in_use",
                )
            ), None
        if saved.path != path:
            return _error_answer(
                StripeApiError(
                    400,
                    "Keys for idempotent requests can only be used for the same endpoint they were first used for "
                    f"('{saved.path}' vs '{path}'). Try using a key other than '{key}' if you meant to execute a "
                    "different request.",
                    type="idempotency_error",
                )
            ), None
        if saved.fingerprint != fingerprint:
            return _error_answer(
                StripeApiError(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters they were first used "
                    f"with. Try using a key other than '{key}' if you meant to execute a different request.",
                    type="idempotency_error",
                )
            ), None
        headers = dict(
            saved.answer.headers,
            **{"Idempotent-Replayed": "true", "Original-Request": saved.request_id},
        )
        return _Answer(saved.answer.status, saved.answer.body, headers), None

    def _execute(self, route: Route, path_args: dict[str, str], params: dict) -> _Answer:
        try:
            obj = route.handler(self.state, path_args, params, self.config)
            body = self.state.render(obj, params.get("expand", []))
        except StripeApiError as error:
            return _error_answer(error)
        return _Answer(200, json.dumps(body).encode(), {})


def mask_key(key: str) -> str:
    """Stripe's way of naming a key in an error: the prefix and the last four characters."""
    match = re.match(r"^((?:sk|rk|pk)_(?:test|live)_)(.*)$", key)
    prefix, rest = (match.group(1), match.group(2)) if match else ("", key)
    return prefix + "*" * max(len(rest) - 4, 0) + rest[-4:]


def _error_answer(error: StripeApiError) -> _Answer:
    return _Answer(error.status, json.dumps(error.body()).encode(), {})


def _rate_limited() -> _Answer:
    return _error_answer(
        StripeApiError(
            429,
            "Request rate limit exceeded. You can learn more about rate limits here "
            "https://stripe.com/docs/rate-limits.",
            code="rate_limit",
        )
    )


def _server_error(status: int) -> _Answer:
    return _error_answer(
        StripeApiError(
            status,
            "An unknown error occurred while processing your request. Please try again.",
            type="api_error",
        )
    )


def _unrecognized(request: web.Request) -> _Answer:
    return _error_answer(
        StripeApiError(
            404,
            f"Unrecognized request URL ({request.method}: {request.path}). Please see https://stripe.com/docs "
            "or we can help at https://support.stripe.com/.",
        )
    )


# --- running it -----------------------------------------------------------------------


async def _start(emulator: Emulator, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(
        emulator.app(), access_log=None, handle_signals=False, shutdown_timeout=0.5
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    return runner, runner.addresses[0][1]


@contextlib.contextmanager
def run_emulator(
    config: EmulatorConfig | None = None, *, state_file: Path | None = None
) -> Iterator[str]:
    """Run an emulator on a free loopback port in a background thread; yield its base URL."""
    emulator = Emulator(config, state_file=state_file)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    started: dict[str, Any] = {}

    def serve_in_thread() -> None:
        asyncio.set_event_loop(loop)
        try:
            started["runner"], started["port"] = loop.run_until_complete(
                _start(emulator, "127.0.0.1", 0)
            )
        except Exception as error:  # noqa: BLE001 - surfaced to the caller below
            started["error"] = error
            return
        finally:
            ready.set()
        loop.run_forever()
        loop.run_until_complete(started["runner"].cleanup())
        loop.close()

    thread = threading.Thread(target=serve_in_thread, name="stripe-emulator", daemon=True)
    thread.start()
    ready.wait()
    if "error" in started:
        raise started["error"]
    try:
        yield f"http://127.0.0.1:{started['port']}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        emulator.save()


def serve(host: str, port: int, config: EmulatorConfig, state_file: Path | None) -> None:
    """Serve until SIGINT or SIGTERM, then save the state file (if any) and return."""

    async def main() -> None:
        emulator = Emulator(config, state_file=state_file)
        runner, bound_port = await _start(emulator, host, port)
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        print(f"Stripe emulator listening on http://{host}:{bound_port}", flush=True)
        await stop.wait()
        await runner.cleanup()
        emulator.save()
        print("Stripe emulator stopped", file=sys.stderr, flush=True)

    asyncio.run(main())
