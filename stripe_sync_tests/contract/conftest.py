"""Fixtures for the contract suite.

Target selection
----------------
* Default: an in-process Stripe emulator (``stripe_sync.emulator.run_emulator``),
  started once per session with ``search_delay_s=1.0`` and the key ``sk_test_contract``.
* ``STRIPE_CONTRACT_SECRET_KEY=sk_test_...`` (or ``rk_test_...``): real Stripe test
  mode at ``https://api.stripe.com``. Live keys (``sk_live_``/``rk_live_``) are refused
  before any request is made; the key is never printed.

In real mode every object the suite creates is tagged with
``metadata[contract_run]=<run_tag>`` and archived (``active=false``) at session end:
products, and prices that are not their product's default price (a default price
cannot be archived; archiving its product is enough).

Tests marked ``emulator_only`` drive the emulator's control API (latency, rate limits,
fault injection); they are skipped against real Stripe with the reason
"emulator knob" - the only skip in the suite.
"""

from __future__ import annotations

import itertools
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import stripe

ENV_KEY = "STRIPE_CONTRACT_SECRET_KEY"
REAL_STRIPE_BASE = "https://api.stripe.com"
EMULATOR_KEY = "sk_test_contract"
EMULATOR_SEARCH_DELAY_S = 1.0


@dataclass
class StripeTarget:
    base_url: str
    api_key: str = field(repr=False)  # never shown in reports
    is_emulator: bool
    run_tag: str
    baseline_config: dict[str, Any] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:  # belt and braces: no key in any repr
        kind = "emulator" if self.is_emulator else "real Stripe test mode"
        return f"StripeTarget({kind}, base_url={self.base_url!r}, run_tag={self.run_tag!r})"


def _make_run_tag() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"contract_{stamp}_{secrets.token_hex(3)}"


def _real_key_or_none() -> str | None:
    key = os.environ.get(ENV_KEY, "").strip()
    if not key:
        return None
    if key.startswith(("sk_live_", "rk_live_")):
        pytest.exit(
            f"{ENV_KEY} holds a LIVE-mode key; the contract suite only runs against "
            "Stripe test mode (sk_test_/rk_test_). Refusing to run.",
            returncode=4,
        )
    if not key.startswith(("sk_test_", "rk_test_")):
        pytest.exit(
            f"{ENV_KEY} is set but is not a Stripe test-mode secret key "
            "(expected a value starting with sk_test_ or rk_test_). Refusing to run.",
            returncode=4,
        )
    return key


@pytest.fixture(scope="session")
def stripe_target() -> Iterator[StripeTarget]:
    run_tag = _make_run_tag()
    key = _real_key_or_none()
    if key is not None:
        yield StripeTarget(REAL_STRIPE_BASE, key, False, run_tag)
        return

    from stripe_sync.emulator import EmulatorConfig, EmulatorControl, run_emulator

    with run_emulator(EmulatorConfig(search_delay_s=EMULATOR_SEARCH_DELAY_S)) as base_url:
        baseline = EmulatorControl(base_url).config()
        yield StripeTarget(base_url, EMULATOR_KEY, True, run_tag, baseline)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/contract/" in str(item.path):
            item.add_marker(pytest.mark.contract)


@pytest.fixture(scope="session")
def is_emulator(stripe_target: StripeTarget) -> bool:
    return stripe_target.is_emulator


@pytest.fixture(scope="session")
def run_tag(stripe_target: StripeTarget) -> str:
    return stripe_target.run_tag


def build_client(target: StripeTarget, **kwargs: Any) -> stripe.StripeClient:
    kwargs.setdefault("max_network_retries", 0)
    return stripe.StripeClient(target.api_key, base_addresses={"api": target.base_url}, **kwargs)


@pytest.fixture(scope="session")
def client(stripe_target: StripeTarget) -> stripe.StripeClient:
    return build_client(stripe_target)


@pytest.fixture(autouse=True)
def _emulator_only_guard(request: pytest.FixtureRequest, stripe_target: StripeTarget) -> None:
    if request.node.get_closest_marker("emulator_only") and not stripe_target.is_emulator:
        pytest.skip("emulator knob")


@pytest.fixture
def emulator(stripe_target: StripeTarget) -> Iterator[Any]:
    """EmulatorControl for knob tests; restores the session's baseline knobs afterwards."""
    assert stripe_target.is_emulator, "mark tests that turn emulator knobs emulator_only"
    from stripe_sync.emulator import EmulatorControl

    control = EmulatorControl(stripe_target.base_url)
    try:
        yield control
    finally:
        control.configure(**stripe_target.baseline_config)


# --------------------------------------------------------------------------- ids


@pytest.fixture(scope="session")
def _counter() -> Callable[[], int]:
    it = itertools.count(1)
    lock = threading.Lock()

    def nxt() -> int:
        with lock:
            return next(it)

    return nxt


@pytest.fixture(scope="session")
def unique_id(run_tag: str, _counter: Callable[[], int]) -> Callable[[str], str]:
    """unique_id("prod") -> "prod_<run_tag>_<n>": unique per session and per call."""

    def make(prefix: str = "prod") -> str:
        return f"{prefix}_{run_tag}_{_counter()}"

    return make


@pytest.fixture(scope="session")
def unique_lookup_key(run_tag: str, _counter: Callable[[], int]) -> Callable[[], str]:
    def make() -> str:
        return f"lk_{run_tag}_{_counter()}"

    return make


# ------------------------------------------------------------------ created objects


class Created:
    """Remembers what the suite created, to archive it at the end of a real run."""

    def __init__(self) -> None:
        self.products: list[str] = []
        self.prices: list[str] = []
        self._lock = threading.Lock()

    def product(self, product_id: str) -> None:
        with self._lock:
            if product_id not in self.products:
                self.products.append(product_id)

    def price(self, price_id: str) -> None:
        with self._lock:
            if price_id not in self.prices:
                self.prices.append(price_id)


@pytest.fixture(scope="session")
def created(stripe_target: StripeTarget, client: stripe.StripeClient) -> Iterator[Created]:
    reg = Created()
    yield reg
    if stripe_target.is_emulator:
        return  # the emulator dies with the session
    failures: list[str] = []
    # Prices first: a non-default price can be archived; the default one refuses, and
    # archiving its product below is enough.
    for price_id in reg.prices:
        try:
            client.v1.prices.update(price_id, params={"active": False})
        except stripe.InvalidRequestError:
            pass  # default price of its product, or already gone
        except stripe.StripeError as exc:  # pragma: no cover - real mode only
            failures.append(f"price {price_id}: {exc.user_message}")
    for product_id in reg.products:
        try:
            client.v1.products.update(product_id, params={"active": False})
        except stripe.InvalidRequestError as exc:
            if exc.code != "resource_missing":  # deleted by a test
                failures.append(f"product {product_id}: {exc.user_message}")
        except stripe.StripeError as exc:  # pragma: no cover - real mode only
            failures.append(f"product {product_id}: {exc.user_message}")
    if failures:  # pragma: no cover - real mode only
        print(
            f"\ncontract cleanup ({stripe_target.run_tag}): could not archive "
            + "; ".join(failures)
        )


def _with_tag(params: dict[str, Any], run_tag: str) -> dict[str, Any]:
    params = dict(params)
    params["metadata"] = {"contract_run": run_tag, **(params.get("metadata") or {})}
    return params


@pytest.fixture(scope="session")
def make_product(
    client: stripe.StripeClient,
    run_tag: str,
    unique_id: Callable[[str], str],
    created: Created,
) -> Callable[..., stripe.Product]:
    """make_product(**params) -> Product with a unique custom id and the run tag.

    ``options=`` is passed through as the request options (e.g. an idempotency key).
    Pass ``id=None`` to let Stripe choose the id.
    """

    def make(options: dict[str, Any] | None = None, **params: Any) -> stripe.Product:
        params.setdefault("id", unique_id("prod"))
        if params["id"] is None:
            del params["id"]
        params.setdefault("name", f"Contract product {params.get('id', '')}".strip())
        product = client.v1.products.create(params=_with_tag(params, run_tag), options=options)
        created.product(product.id)
        if isinstance(product.default_price, str):
            created.price(product.default_price)
        return product

    return make


@pytest.fixture(scope="session")
def make_price(
    client: stripe.StripeClient, run_tag: str, created: Created
) -> Callable[..., stripe.Price]:
    """make_price(product_id, **params) -> Price (usd 1000 unless given), tagged;
    make_price(None, product_data={...}) makes its product too."""

    def make(product: str | None, **params: Any) -> stripe.Price:
        params.setdefault("currency", "usd")
        if "unit_amount_decimal" not in params and "custom_unit_amount" not in params:
            params.setdefault("unit_amount", 1000)
        if product is not None:
            params["product"] = product
        price = client.v1.prices.create(params=_with_tag(params, run_tag))
        created.price(price.id)
        created.product(price.product)
        return price

    return make


@pytest.fixture
def product(make_product) -> stripe.Product:
    """A fresh product with a one-time default price (usd 1000)."""
    return make_product(default_price_data={"currency": "usd", "unit_amount": 1000})


@pytest.fixture(scope="session")
def raw_http(stripe_target: StripeTarget) -> Callable[..., RawResponse]:
    """raw_http(method, path, form=None, headers=None, key=<target key>) -> RawResponse.

    Uses ``requests`` (installed with stripe) for what stripe-python hides: status,
    headers, missing auth, concurrency. ``key=None`` sends no Authorization header.
    """
    import requests

    sentinel = object()

    def call(
        method: str,
        path: str,
        form: Any = None,
        headers: dict[str, str] | None = None,
        key: Any = sentinel,
        timeout: float = 60,
    ) -> RawResponse:
        hdrs = dict(headers or {})
        use_key = stripe_target.api_key if key is sentinel else key
        if use_key is not None:
            hdrs["Authorization"] = f"Bearer {use_key}"
        started = time.monotonic()
        resp = requests.request(
            method,
            stripe_target.base_url + path,
            data=form if method.upper() == "POST" else None,
            params=form if method.upper() != "POST" else None,
            headers=hdrs,
            timeout=timeout,
        )
        elapsed = time.monotonic() - started
        try:
            body = resp.json()
        except ValueError:
            body = None
        return RawResponse(resp.status_code, resp.headers, body, elapsed)

    return call


@dataclass
class RawResponse:
    status: int
    headers: Any  # case-insensitive mapping
    body: Any
    elapsed: float
