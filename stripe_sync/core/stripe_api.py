"""The Stripe calls the pipeline makes, on stripe-python's `StripeClient` (v1 services).

Each call passes the shared throttle (throttle/), then the one retry policy (retry.py);
stripe-python's own retries are off, so every attempt is throttled and counted. An attempt
waits for its booking however long the throttle's store takes to answer (within the store's
own deadline), and is never sent without one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import stripe

from stripe_sync.core.errors import ConfigError, StripeFailure, classify
from stripe_sync.core.retry import CALL_TIMEOUT_S, RetryPolicy, call_with_retries
from stripe_sync.core.throttle.policy import STRIPE_RATE_LIMITS

if TYPE_CHECKING:
    from stripe_sync.core.throttle import Throttle

STRIPE_API_BASE = "https://api.stripe.com"
LIST_PAGE_SIZE = 100  # the most objects one list request returns


def key_mode(secret_key: str) -> str:
    """'test' or 'live', from the key's prefix; a ConfigError for anything else."""
    for mode in ("test", "live"):
        if secret_key.startswith((f"sk_{mode}_", f"rk_{mode}_")):
            return mode
    raise ConfigError(
        "STRIPE_SECRET_KEY is not a Stripe secret or restricted key (it must start with sk_test_, rk_test_, "
        "sk_live_ or rk_live_)."
    )


class _CountingHttpClient(stripe.RequestsClient):
    """stripe-python's requests client, counting the attempts each thread sends."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._this_thread = threading.local()

    def request(self, *args: Any, **kwargs: Any):
        self._this_thread.sent = self.sent_by_this_thread + 1
        return super().request(*args, **kwargs)

    @property
    def sent_by_this_thread(self) -> int:
        return getattr(self._this_thread, "sent", 0)


class StripeApi:
    """The products and prices calls of the pipeline; results are plain dicts."""

    def __init__(
        self,
        secret_key: str,
        *,
        api_base: str | None = None,
        timeout_s: float = CALL_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        throttle: Throttle | None = None,
        allow_live_mode: bool = False,
    ):
        if not secret_key:
            raise ConfigError(
                "STRIPE_SECRET_KEY is not set: set it to a Stripe test-mode secret key (sk_test_...)."
            )
        self.mode = key_mode(secret_key)
        if self.mode == "live" and not allow_live_mode:
            raise ConfigError(
                "STRIPE_SECRET_KEY is a live-mode key: if you really mean to write to live "
                "Stripe, pass --allow-live-mode, or set stripe.allow_live_mode: true in "
                "stripe_sync.yaml (STRIPE_ALLOW_LIVE_MODE=true in the environment)."
            )
        self.api_base = api_base or STRIPE_API_BASE
        self._retry = retry or RetryPolicy()
        self._throttle = throttle
        self._http = _CountingHttpClient(timeout=timeout_s)
        # Retries are ours (retry.py): stripe-python's would bypass the throttle.
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": self.api_base},
            max_network_retries=0,
            http_client=self._http,
        )

    def __repr__(self) -> str:
        return f"StripeApi(mode={self.mode!r}, api_base={self.api_base!r})"

    def close(self) -> None:
        """Let go of the throttle's store connections."""
        if self._throttle is not None:
            self._throttle.close()

    @property
    def rate(self) -> float:
        """Requests per second the throttle allows now (unthrottled: Stripe's test-mode limit)."""
        return self._throttle.rate if self._throttle is not None else self.rates[0]

    @property
    def rates(self) -> tuple[float, float]:
        """(global, per endpoint) requests per second of the throttle's budget (unthrottled:
        Stripe's test-mode limits)."""
        if self._throttle is None:
            return STRIPE_RATE_LIMITS["test"]
        return self._throttle.policy.global_rate, self._throttle.policy.endpoint_rate

    @property
    def requests_sent_by_this_thread(self) -> int:
        """HTTP requests this thread has sent, retries included (one product is one thread's work)."""
        return self._http.sent_by_this_thread

    def account(self) -> dict:
        return self._call("GET /v1/account", self._client.v1.accounts.retrieve_current)

    def create_product(self, params: dict, idempotency_key: str) -> dict:
        return self._call(
            "POST /v1/products",
            self._client.v1.products.create,
            params=params,
            options=_key(idempotency_key),
        )

    def retrieve_product(self, product_id: str) -> dict:
        return self._call(
            "GET /v1/products/{id}",
            self._client.v1.products.retrieve,
            product_id,
            params={"expand": ["default_price"]},
        )

    def list_products(self, product_ids: Sequence[str]) -> list[dict]:
        """The products among `product_ids` that exist, default prices expanded: one request
        per 100 ids (Stripe's largest page), never search (it lags behind writes)."""
        found = []
        for start in range(0, len(product_ids), LIST_PAGE_SIZE):
            page = self._call(
                "GET /v1/products",
                self._client.v1.products.list,
                params={
                    "ids": list(product_ids[start : start + LIST_PAGE_SIZE]),
                    "limit": LIST_PAGE_SIZE,
                    "expand": ["data.default_price"],
                },
            )
            found += page["data"]
        return found

    def every_product(self) -> Iterator[dict]:
        """Every product of the account, archived ones too, default prices expanded: one
        request per 100, newest first (never search: it lags behind writes)."""
        after = None
        while True:
            params: dict[str, Any] = {"limit": LIST_PAGE_SIZE, "expand": ["data.default_price"]}
            if after is not None:
                params["starting_after"] = after
            page = self._call("GET /v1/products", self._client.v1.products.list, params=params)
            yield from page["data"]
            if not page["has_more"]:
                return
            after = page["data"][-1]["id"]

    def update_product(self, product_id: str, params: dict, idempotency_key: str) -> dict:
        return self._call(
            "POST /v1/products/{id}",
            self._client.v1.products.update,
            product_id,
            params=params,
            options=_key(idempotency_key),
        )

    def create_price(self, params: dict, idempotency_key: str) -> dict:
        return self._call(
            "POST /v1/prices",
            self._client.v1.prices.create,
            params=params,
            options=_key(idempotency_key),
        )

    def update_price(self, price_id: str, params: dict, idempotency_key: str) -> dict:
        return self._call(
            "POST /v1/prices/{id}",
            self._client.v1.prices.update,
            price_id,
            params=params,
            options=_key(idempotency_key),
        )

    def prices_of(self, product_id: str) -> list[dict]:
        """Every price of a product, archived ones too: one request per 100."""
        prices, after = [], None
        while True:
            params: dict[str, Any] = {"product": product_id, "limit": LIST_PAGE_SIZE}
            if after is not None:
                params["starting_after"] = after
            page = self._call("GET /v1/prices", self._client.v1.prices.list, params=params)
            prices += page["data"]
            if not page["has_more"]:
                return prices
            after = page["data"][-1]["id"]

    def price_by_lookup_key(self, lookup_key: str) -> dict | None:
        found = self._call(
            "GET /v1/prices",
            self._client.v1.prices.list,
            params={"lookup_keys": [lookup_key], "limit": 1},
        )
        return found["data"][0] if found["data"] else None

    def _call(self, endpoint: str, method, *args: Any, **kwargs: Any) -> dict:
        """One logical call: throttled attempts under the retry policy."""

        def attempt() -> dict:
            if self._throttle is not None:
                self._throttle.acquire(endpoint)
            try:
                return method(*args, **kwargs).to_dict()
            except stripe.StripeError as error:
                raise classify(error, endpoint) from None

        on_rate_limited = (
            self._throttle.rate_limited if self._throttle is not None else lambda: None
        )
        # Stripe's answers only: the throttle's store retried on its own, by its own policy.
        return call_with_retries(
            attempt, self._retry, on_rate_limited=on_rate_limited, retried=StripeFailure
        )


def _key(idempotency_key: str) -> dict:
    return {"idempotency_key": idempotency_key}
