"""Who a catalog row is in Stripe, and what exactly it should look like there.

Product ids are derived from catalog ids, so the same row always maps to the same
Stripe product: a retried or repeated create can't make a second one (Stripe answers
`resource_already_exists`), however long after the first.

The rule: a catalog id made only of ASCII letters, digits, `_` and `-`, at most 64
characters, becomes `cms_<id>` (`42` -> `cms_42`). Any other id (spaces, `/`, dots,
non-ASCII, longer) becomes `cmsx_<first 32 hex digits of sha256(id)>`: the prefix can't
collide with the first form, and the exact id is kept in `metadata.cms_id`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace

from stripe_sync.core.money import price_text

MANAGED_BY = "stripe_sync"
# How the catalog hands over columns mapped to metadata: "metadata.<column>".
METADATA_PREFIX = "metadata."
HASH_VERSION = "v1"
PRODUCT_FIELDS = ("name", "description", "images", "metadata", "active")
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def reserved_metadata_keys() -> tuple[str, ...]:
    """Metadata keys the pipeline owns; mapped catalog columns can't use them."""
    return ("cms_id", "managed_by", "sync_hash")


def stripe_product_id(cms_id: str) -> str:
    """The Stripe product id for a catalog id (see the module docstring for the rule)."""
    if _SAFE_ID.fullmatch(cms_id):
        return f"cms_{cms_id}"
    return f"cmsx_{hashlib.sha256(cms_id.encode()).hexdigest()[:32]}"


def _digest(value: object) -> str:
    canonical = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class DesiredPrice:
    """A price row as it must be in Stripe (with a prices model): one active price of its
    product, known by the row's id (`metadata.cms_price_id`)."""

    key: str  # the price row's id in the catalog
    currency: str
    unit_amount: int
    interval: str | None = None  # None: one-time; day, week, month or year: recurring
    interval_count: int = 1
    nickname: str | None = None

    def content(self) -> list[object]:
        """What a Stripe price can't change: a new content is a new price."""
        return [self.currency, self.unit_amount, self.interval, self.interval_count]

    def recurring(self) -> dict[str, object] | None:
        if self.interval is None:
            return None
        return {"interval": self.interval, "interval_count": self.interval_count}

    def matches(self, price: dict) -> bool:
        """Whether a Stripe price is this one: its row's id and the same content."""
        return (price.get("metadata") or {}).get("cms_price_id") == self.key and self.same_content(
            price
        )

    def same_content(self, price: dict) -> bool:
        """Whether a Stripe price has this one's amount, currency and recurrence."""
        recurring = price.get("recurring") or {}
        return [
            price.get("currency"),
            price.get("unit_amount"),
            recurring.get("interval"),
            recurring.get("interval_count", 1),
        ] == self.content()

    def describe(self) -> str:
        """E.g. `m1: 9.90 EUR every 1 month "Monthly"`."""
        every = f" every {self.interval_count} {self.interval}" if self.interval else ""
        named = f" {self.nickname!r}" if self.nickname else ""
        return f"{self.key}: {price_text(self.unit_amount, self.currency)}{every}{named}"

    def lookup_key(self, product_id: str) -> str:
        """Unique per product, price row and content: a price made twice is found, not made
        again (at most 200 characters: a long row id is hashed)."""
        key = self.key if _SAFE_ID.fullmatch(self.key) else _digest(self.key)
        return f"{MANAGED_BY}:{product_id}:{key}:{_digest(self.content())}"


@dataclass(frozen=True)
class DesiredProduct:
    """A catalog row as it must be in Stripe: exactly what the pipeline sends."""

    cms_id: str
    name: str
    description: str | None
    images: tuple[str, ...]
    active: bool
    currency: str
    unit_amount: int
    extra_metadata: tuple[tuple[str, str], ...] = field(default=())
    # With a prices model: every active valid price, the default first (its currency and
    # amount are the product's own), and the row ids of quarantined prices (left alone).
    prices: tuple[DesiredPrice, ...] = ()
    held_prices: tuple[str, ...] = ()
    # The Stripe product the row is when it is not the pipeline's own id: one it adopted.
    adopted_id: str | None = None

    @property
    def stripe_id(self) -> str:
        return self.adopted_id or stripe_product_id(self.cms_id)

    def known_as(self, product_id: str | None) -> DesiredProduct:
        """The same row, as the Stripe product `product_id` (None: as it is)."""
        if product_id is None or product_id == self.stripe_id:
            return self
        own = product_id == stripe_product_id(self.cms_id)
        return replace(self, adopted_id=None if own else product_id)

    def managed_metadata(self) -> dict[str, str]:
        """Metadata the pipeline owns on the product and its prices (not the hash)."""
        return {**dict(self.extra_metadata), "cms_id": self.cms_id, "managed_by": MANAGED_BY}

    def field_digests(self) -> dict[str, str]:
        """One short digest per Stripe field, so a diff says which fields changed."""
        return {
            "name": _digest(self.name),
            "description": _digest(self.description),
            "images": _digest(list(self.images)),
            "metadata": _digest(self.managed_metadata()),
            "active": _digest(self.active),
            "price": _digest([self.currency, self.unit_amount]),
        } | ({"prices": self.prices_digest()} if self.prices else {})

    def prices_digest(self) -> str:
        return _digest(
            [[price.key, *price.content(), price.nickname] for price in self.prices]
            + [sorted(self.held_prices)]
        )

    @property
    def sync_hash(self) -> str:
        """The content hash stored in the catalog and in the product's metadata."""
        digests = self.field_digests()
        return HASH_VERSION + ":" + ",".join(f"{name}={digests[name]}" for name in sorted(digests))

    def product_fields(self) -> dict[str, object]:
        """The product's own fields as Stripe takes them on create (no price)."""
        fields: dict[str, object] = {
            "name": self.name,
            "images": list(self.images),
            "metadata": {**self.managed_metadata(), "sync_hash": self.sync_hash},
            "active": self.active,
        }
        if self.description:
            fields["description"] = self.description
        return fields

    def price_fields(self) -> dict[str, object]:
        """The default price as `default_price_data` (and a price create) take it."""
        if self.prices:
            return self._price_data(self.prices[0])
        return {
            "currency": self.currency,
            "unit_amount": self.unit_amount,
            "metadata": self.managed_metadata(),
        }

    def further_price_fields(self, price: DesiredPrice) -> dict[str, object]:
        """A price of the prices model as `POST /v1/prices` takes it."""
        fields = {
            "product": self.stripe_id,
            **self._price_data(price),
            "lookup_key": price.lookup_key(self.stripe_id),
        }
        if price.nickname:
            fields["nickname"] = price.nickname
        return fields

    def price_metadata(self, price: DesiredPrice) -> dict[str, str]:
        """The metadata of a price of the prices model: the pipeline's and its row's id."""
        return {**self.managed_metadata(), "cms_price_id": price.key}

    def _price_data(self, price: DesiredPrice) -> dict[str, object]:
        """What every price of the prices model carries, the default in `default_price_data`
        too (which takes no nickname)."""
        fields: dict[str, object] = {
            "currency": price.currency,
            "unit_amount": price.unit_amount,
            "metadata": self.price_metadata(price),
        }
        if price.recurring():
            fields["recurring"] = price.recurring()
        return fields

    def price_lookup_key(self) -> str:
        """Unique per product, currency and amount: a price made twice is found, not duplicated."""
        return f"{MANAGED_BY}:{self.stripe_id}:{self.currency}:{self.unit_amount}"


def changed_fields(stored_hash: str | None, desired: DesiredProduct) -> tuple[str, ...] | None:
    """Fields (and `price`) whose digest differs from the stored hash; None if it can't tell."""
    if not stored_hash or not stored_hash.startswith(HASH_VERSION + ":"):
        return None
    try:
        stored = dict(part.split("=", 1) for part in stored_hash.split(":", 1)[1].split(","))
    except ValueError:
        return None
    current = desired.field_digests()
    if set(stored) != set(current):
        return None
    return tuple(name for name in sorted(current) if stored[name] != current[name])


def idempotency_key(operation: str, object_id: str, params: dict) -> str:
    """The same logical write always carries the same key; other parameters, another key."""
    return f"{MANAGED_BY}-{operation}-{object_id[:80]}-{_digest(params)}"
