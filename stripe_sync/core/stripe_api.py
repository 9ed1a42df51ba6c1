"""The Stripe calls the pipeline makes, on stripe-python's `StripeClient` (v1 services).

Every error is classified here, once: a fatal one (bad key, missing permission) stops
the run; a row's bad data fails that row; retryable and rate-limited errors are what
the retry layer may try again. Messages are redacted: Stripe's own 401 message names
the key (masked), and nothing key-like may reach a log or the catalog.
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass
from typing import Any

import stripe

from stripe_sync.core.errors import ConfigError
from stripe_sync.core.secrets import redact

STRIPE_API_BASE = "https://api.stripe.com"


class ErrorKind(enum.Enum):
    FATAL = "fatal"  # authentication or permission: nothing else will work either
    RATE_LIMITED = "rate_limited"
    RETRYABLE = "retryable"  # connection, timeout, 409, 5xx
    BAD_DATA = "bad_data"  # Stripe refused this row's request


@dataclass
class StripeFailure(Exception):
    """A Stripe call that failed, classified, with a key-free message."""

    kind: ErrorKind
    message: str
    code: str | None = None
    status: int | None = None

    def __str__(self) -> str:
        return self.message


def classify(error: stripe.StripeError) -> StripeFailure:
    if isinstance(error, (stripe.AuthenticationError, stripe.PermissionError)):
        kind = ErrorKind.FATAL
    elif isinstance(error, stripe.RateLimitError) or error.http_status == 429:
        kind = ErrorKind.RATE_LIMITED
    elif (
        isinstance(error, stripe.APIConnectionError)
        or (error.http_status or 0) >= 500
        or error.http_status == 409
    ):
        kind = ErrorKind.RETRYABLE
    else:
        kind = ErrorKind.BAD_DATA
    body = error.json_body.get("error", {}) if isinstance(error.json_body, dict) else {}
    message = body.get("message") or error.user_message or type(error).__name__
    return StripeFailure(
        kind, redact(str(message)), code=body.get("code") or error.code, status=error.http_status
    )


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
    """stripe-python's requests client, counting every attempt it sends (retries too)."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.sent = 0
        self._lock = threading.Lock()
        self._this_thread = threading.local()

    def request(self, *args: Any, **kwargs: Any):
        with self._lock:
            self.sent += 1
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
        max_network_retries: int = 2,
        timeout_s: float = 30.0,
        allow_live_mode: bool = False,
    ):
        if not secret_key:
            raise ConfigError(
                "STRIPE_SECRET_KEY is not set: set it to a Stripe test-mode secret key (sk_test_...)."
            )
        self.mode = key_mode(secret_key)
        if self.mode == "live" and not allow_live_mode:
            raise ConfigError(
                "STRIPE_SECRET_KEY is a live-mode key: pass --allow-live-mode (or set allow_live_mode on the "
                "stripe resource) if you really mean to write to live Stripe."
            )
        self.api_base = api_base or STRIPE_API_BASE
        self._http = _CountingHttpClient(timeout=timeout_s)
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": self.api_base},
            max_network_retries=max_network_retries,
            http_client=self._http,
        )

    def __repr__(self) -> str:
        return f"StripeApi(mode={self.mode!r}, api_base={self.api_base!r})"

    @property
    def requests_sent(self) -> int:
        """HTTP requests sent so far, stripe-python's own retries included."""
        return self._http.sent

    @property
    def requests_sent_by_this_thread(self) -> int:
        """The same, counting only this thread's calls (one product is one thread's work)."""
        return self._http.sent_by_this_thread

    def account(self) -> dict:
        return self._call(self._client.v1.accounts.retrieve_current)

    def create_product(self, params: dict, idempotency_key: str) -> dict:
        return self._call(
            self._client.v1.products.create,
            params=params,
            options={"idempotency_key": idempotency_key},
        )

    def retrieve_product(self, product_id: str) -> dict:
        return self._call(
            self._client.v1.products.retrieve, product_id, params={"expand": ["default_price"]}
        )

    def update_product(self, product_id: str, params: dict, idempotency_key: str) -> dict:
        return self._call(
            self._client.v1.products.update,
            product_id,
            params=params,
            options={"idempotency_key": idempotency_key},
        )

    def create_price(self, params: dict, idempotency_key: str) -> dict:
        return self._call(
            self._client.v1.prices.create,
            params=params,
            options={"idempotency_key": idempotency_key},
        )

    def update_price(self, price_id: str, params: dict, idempotency_key: str) -> dict:
        return self._call(
            self._client.v1.prices.update,
            price_id,
            params=params,
            options={"idempotency_key": idempotency_key},
        )

    def price_by_lookup_key(self, lookup_key: str) -> dict | None:
        found = self._call(
            self._client.v1.prices.list, params={"lookup_keys": [lookup_key], "limit": 1}
        )
        return found["data"][0] if found["data"] else None

    @staticmethod
    def _call(method, *args: Any, **kwargs: Any) -> dict:
        try:
            return method(*args, **kwargs).to_dict()
        except stripe.StripeError as error:
            raise classify(error) from None
