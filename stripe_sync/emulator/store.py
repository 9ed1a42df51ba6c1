"""The emulator's account: products, prices and Stripe's rules for them.

Every method takes parameters already checked against `stripe.params` (see params.py)
and returns the stored object or raises `StripeApiError` as Stripe would. Objects are
stored as the JSON Stripe returns; callers copy before changing what they send.
"""

from __future__ import annotations

import copy
import random
import string
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from stripe_sync.core.money import MAX_INTERVAL_COUNT, RECURRING_INTERVALS, SUPPORTED_CURRENCIES
from stripe_sync.emulator.errors import StripeApiError, invalid_request, resource_missing
from stripe_sync.emulator.search import SearchIndex, parse_query

MAX_IMAGES = 8
MAX_METADATA_KEYS = 50
MAX_METADATA_KEY_LENGTH = 40
MAX_METADATA_VALUE_LENGTH = 500
MAX_LOOKUP_KEY_LENGTH = 200
MAX_LOOKUP_KEYS_FILTER = 10
PRICE_TYPES = ("one_time", "recurring")
USAGE_TYPES = ("licensed", "metered")
_ID_ALPHABET = string.ascii_letters + string.digits
_MAX_EXPAND_DEPTH = 4
_EXPANDABLE = {"product": {"default_price": "price"}, "price": {"product": "product"}}


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(random.choices(_ID_ALPHABET, k=length))


class StripeState:
    """One Stripe account in one mode (test or live)."""

    def __init__(self, *, livemode: bool = False, clock: Callable[[], float] = time.time):
        self.livemode = livemode
        self._clock = clock
        self.search_index = SearchIndex(clock)
        self.reset()

    def reset(self) -> None:
        self._objects: dict[str, dict[str, dict]] = {"product": {}, "price": {}}
        # Insertion order per kind; a list's order is newest first (by `created`, ties by
        # insertion), which insertion order gives as long as `created` never goes back.
        self._order: dict[str, list[str]] = {"product": [], "price": []}
        self._position: dict[str, int] = {}
        self._prices_of_product: dict[str, list[str]] = {}
        self._price_by_lookup_key: dict[str, str] = {}
        self._last_created = 0
        self.search_index.clear()

    # --- persistence ------------------------------------------------------------------

    def dump(self) -> dict:
        return {
            "livemode": self.livemode,
            "products": self._in_order("product"),
            "prices": self._in_order("price"),
        }

    def load(self, data: dict) -> None:
        self.reset()
        self.livemode = data.get("livemode", self.livemode)
        for kind, key in (("product", "products"), ("price", "prices")):
            for obj in data.get(key, []):
                self._insert(kind, obj, indexed_at=0.0)

    def _in_order(self, kind: str) -> list[dict]:
        return [self._objects[kind][i] for i in self._order[kind] if i in self._objects[kind]]

    # --- account ------------------------------------------------------------------------

    def account(self) -> dict:
        return {
            "id": "acct_1StripeSyncEmu",
            "object": "account",
            "business_profile": {
                "name": "stripe_sync emulator",
                "url": None,
                "support_email": None,
            },
            "business_type": "company",
            "charges_enabled": True,
            "country": "DE",
            "created": 1700000000,
            "default_currency": "eur",
            "details_submitted": True,
            "email": "emulator@example.invalid",
            "payouts_enabled": True,
            "settings": {
                "dashboard": {"display_name": "stripe_sync emulator", "timezone": "Etc/UTC"}
            },
            "type": "standard",
        }

    # --- products -----------------------------------------------------------------------

    def create_product(self, params: dict) -> dict:
        product_id = params.get("id") or new_id("prod_", 14)
        if product_id in self._objects["product"]:
            raise invalid_request(
                "Product already exists.", code="resource_already_exists", param="id"
            )
        _require_non_empty(params, "name")
        now = self._now()
        product = {
            "id": product_id,
            "object": "product",
            "active": params.get("active", True),
            "created": now,
            "default_price": None,
            "description": params.get("description") or None,
            "images": _images(params.get("images", [])),
            "livemode": self.livemode,
            "marketing_features": params.get("marketing_features", []),
            "metadata": _metadata({}, params.get("metadata", {})),
            "name": params["name"],
            "package_dimensions": params.get("package_dimensions"),
            "shippable": params.get("shippable"),
            "statement_descriptor": params.get("statement_descriptor"),
            "tax_code": params.get("tax_code"),
            "type": params.get("type", "service"),
            "unit_label": params.get("unit_label"),
            "updated": now,
            "url": params.get("url"),
        }
        price = None
        if "default_price_data" in params:
            # Validate the price before anything is stored: the request is all or nothing.
            price = self._build_price(
                product_id, params["default_price_data"], param_prefix="default_price_data"
            )
            product["default_price"] = price["id"]
        self._insert("product", product)
        if price is not None:
            self._insert("price", price)
        return product

    def retrieve_product(self, product_id: str) -> dict:
        product = self._objects["product"].get(product_id)
        if product is None:
            raise resource_missing("product", product_id)
        return product

    def update_product(self, product_id: str, params: dict) -> dict:
        product = self.retrieve_product(product_id)
        changes: dict[str, Any] = {}
        if params.get("default_price") == "":
            changes["default_price"] = None
        elif "default_price" in params:
            price = self._objects["price"].get(params["default_price"])
            if price is None:
                raise resource_missing("price", params["default_price"], param="default_price")
            if price["product"] != product_id:
                raise invalid_request(
                    f"The price `{price['id']}` does not belong to product `{product_id}`.",
                    param="default_price",
                )
            changes["default_price"] = price["id"]
        _require_non_empty(params, "name")
        if "images" in params:
            changes["images"] = _images(params["images"] or [])
        if "metadata" in params:
            changes["metadata"] = _metadata(product["metadata"], params["metadata"])
        for key, value in params.items():
            if key in ("default_price", "images", "metadata", "expand"):
                continue
            # `""` unsets an optional string (description, url, unit_label, tax_code).
            changes[key] = None if value == "" else value
        product.update(changes)
        product["updated"] = max(self._now(), product["updated"])
        self._reindex("product", product)
        return product

    def delete_product(self, product_id: str) -> dict:
        self.retrieve_product(product_id)
        if self._prices_of_product.get(product_id):
            raise invalid_request(
                "This product cannot be deleted because it has one or more user-created prices."
            )
        del self._objects["product"][product_id]
        self.search_index.record("product", product_id, None)
        return {"id": product_id, "object": "product", "deleted": True}

    def list_products(self, params: dict) -> dict:
        for cursor in ("starting_after", "ending_before"):
            if "ids" in params and cursor in params:
                raise invalid_request(
                    f"You may only specify one of these parameters: ids, {cursor}.", param="ids"
                )
        filters = _attribute_filters(params, ("active", "shippable", "type", "url"))
        candidates = None
        if "ids" in params:
            wanted = set(params["ids"])
            candidates = sorted(
                (i for i in wanted if i in self._objects["product"]), key=self._position.__getitem__
            )
        return self._page("product", params, filters, candidates, url="/v1/products")

    # --- prices -------------------------------------------------------------------------

    def create_price(self, params: dict) -> dict:
        if "product" in params and "product_data" in params:
            raise invalid_request(
                "You may only specify one of these parameters: product, product_data.",
                param="product",
            )
        if "product_data" in params:
            product_id = None
        elif "product" in params:
            product_id = self.retrieve_product_for_param(params["product"])
        else:
            raise invalid_request(
                "You must specify either `product` or `product_data` when creating a price.",
                param="product",
            )
        price = self._build_price(product_id or "", params, param_prefix=None)
        if product_id is None:
            price["product"] = self.create_product(params["product_data"])["id"]
        self._claim_lookup_key(
            price["lookup_key"], price["id"], params.get("transfer_lookup_key", False)
        )
        self._insert("price", price)
        return price

    def retrieve_product_for_param(self, product_id: str) -> str:
        if product_id not in self._objects["product"]:
            raise StripeApiError(
                400, f"No such product: '{product_id}'", code="resource_missing", param="product"
            )
        return product_id

    def retrieve_price(self, price_id: str) -> dict:
        price = self._objects["price"].get(price_id)
        if price is None:
            raise resource_missing("price", price_id)
        return price

    def update_price(self, price_id: str, params: dict) -> dict:
        price = self.retrieve_price(price_id)
        product = self._objects["product"].get(price["product"])
        if (
            params.get("active") is False
            and product is not None
            and product["default_price"] == price_id
        ):
            raise invalid_request(
                "This price cannot be archived because it is the default price of its product.",
                param="active",
            )
        if "lookup_key" in params:
            self._claim_lookup_key(
                params["lookup_key"] or None, price_id, params.get("transfer_lookup_key", False)
            )
            price["lookup_key"] = params["lookup_key"] or None
        if "metadata" in params:
            price["metadata"] = _metadata(price["metadata"], params["metadata"])
        for key in ("active", "nickname", "tax_behavior", "currency_options"):
            if key in params:
                price[key] = params[key] if params[key] != "" else None
        self._reindex("price", price)
        return price

    def list_prices(self, params: dict) -> dict:
        if "type" in params:
            _one_of(params["type"], PRICE_TYPES, param="type")
        filters = _attribute_filters(params, ("active", "currency", "product", "type"))
        if "recurring" in params:
            wanted = params["recurring"]
            if "interval" in wanted:
                _one_of(wanted["interval"], RECURRING_INTERVALS, param="recurring[interval]")
            if "usage_type" in wanted:
                _one_of(wanted["usage_type"], USAGE_TYPES, param="recurring[usage_type]")
            filters.append(
                lambda p: (
                    p["recurring"] is not None
                    and all(p["recurring"].get(k) == v for k, v in wanted.items())
                )
            )
        candidates = None
        if "lookup_keys" in params:
            if len(params["lookup_keys"]) > MAX_LOOKUP_KEYS_FILTER:
                raise invalid_request(
                    f"You may only specify up to {MAX_LOOKUP_KEYS_FILTER} lookup keys.",
                    param="lookup_keys",
                )
            held = {self._price_by_lookup_key.get(k) for k in params["lookup_keys"]} - {None}
            candidates = sorted(held, key=self._position.__getitem__)
        elif "product" in params:
            self.retrieve_product_for_param(params["product"])
            candidates = self._prices_of_product.get(params["product"], [])
        return self._page("price", params, filters, candidates, url="/v1/prices")

    def _build_price(self, product_id: str, params: dict, *, param_prefix: str | None) -> dict:
        def param(name: str) -> str:
            return name if param_prefix is None else f"{param_prefix}[{name}]"

        currency = params["currency"].lower()
        if currency not in SUPPORTED_CURRENCIES:
            raise invalid_request(
                f"Invalid currency: {params['currency']}. Stripe currently supports these currencies: "
                + ", ".join(SUPPORTED_CURRENCIES),
                param=param("currency"),
            )
        amount_params = [
            k for k in ("unit_amount", "unit_amount_decimal", "custom_unit_amount") if k in params
        ]
        if not amount_params:
            raise invalid_request(
                "Prices require an `unit_amount` or `unit_amount_decimal` parameter to be set.",
                param=param("unit_amount"),
            )
        if "unit_amount" in params and "unit_amount_decimal" in params:
            raise invalid_request(
                "You may only specify one of these parameters: unit_amount, unit_amount_decimal.",
                param=param("unit_amount"),
            )
        unit_amount = params.get("unit_amount")
        unit_amount_decimal = params.get("unit_amount_decimal")
        if unit_amount is not None and unit_amount < 0:
            raise invalid_request("Invalid non-negative integer", param=param("unit_amount"))
        if unit_amount_decimal is not None:
            if unit_amount_decimal < 0:
                raise invalid_request(
                    "Invalid non-negative decimal", param=param("unit_amount_decimal")
                )
            if unit_amount_decimal == unit_amount_decimal.to_integral_value():
                unit_amount = int(unit_amount_decimal)
        recurring = params.get("recurring")
        if recurring is not None:
            recurring = _recurring(recurring, param=param("recurring"))
        price_id = new_id("price_")
        lookup_key = params.get("lookup_key")
        if lookup_key is not None:
            if len(lookup_key) > MAX_LOOKUP_KEY_LENGTH:
                raise invalid_request(
                    f"Lookup keys must be at most {MAX_LOOKUP_KEY_LENGTH} characters.",
                    param="lookup_key",
                )
            self._claim_lookup_key(
                lookup_key, price_id, params.get("transfer_lookup_key", False), dry=True
            )
        return {
            "id": price_id,
            "object": "price",
            "active": params.get("active", True),
            "billing_scheme": "per_unit",
            "created": self._now(),
            "currency": currency,
            "custom_unit_amount": params.get("custom_unit_amount"),
            "livemode": self.livemode,
            "lookup_key": lookup_key,
            "metadata": _metadata({}, params.get("metadata", {}), param=param("metadata")),
            "nickname": params.get("nickname"),
            "product": product_id,
            "recurring": recurring,
            "tax_behavior": params.get("tax_behavior", "unspecified"),
            "tiers_mode": None,
            "transform_quantity": None,
            "type": "recurring" if recurring else "one_time",
            "unit_amount": unit_amount,
            "unit_amount_decimal": str(
                unit_amount_decimal if unit_amount_decimal is not None else unit_amount
            )
            if (unit_amount is not None or unit_amount_decimal is not None)
            else None,
        }

    def _claim_lookup_key(
        self, lookup_key: str | None, price_id: str, transfer: bool, *, dry: bool = False
    ) -> None:
        """Give `lookup_key` to `price_id`; a key held elsewhere moves only with transfer."""
        current = self._objects["price"].get(price_id)
        if (
            current is not None
            and current["lookup_key"]
            and current["lookup_key"] != lookup_key
            and not dry
        ):
            self._price_by_lookup_key.pop(current["lookup_key"], None)
        if lookup_key is None:
            return
        holder = self._price_by_lookup_key.get(lookup_key)
        if holder is not None and holder != price_id:
            if not transfer:
                raise invalid_request(
                    f"A price ({holder}) already uses that lookup key.", param="lookup_key"
                )
            if not dry:
                self._objects["price"][holder]["lookup_key"] = None
                self._reindex("price", self._objects["price"][holder])
        if not dry:
            self._price_by_lookup_key[lookup_key] = price_id

    # --- search -------------------------------------------------------------------------

    def search(self, kind: str, params: dict, *, delay_s: float) -> dict:
        matches = parse_query(params["query"], kind)
        limit = _limit(params)
        offset = 0
        if params.get("page"):
            try:
                offset = int(params["page"].removeprefix("page_"))
            except ValueError:
                raise invalid_request("Invalid page token.", param="page") from None
        found = [obj for obj in self.search_index.visible(kind, delay_s) if matches(obj)]
        data = [
            copy.deepcopy(self._objects[kind].get(obj["id"], obj))
            for obj in found[offset : offset + limit]
        ]
        has_more = offset + limit < len(found)
        return {
            "object": "search_result",
            "data": data,
            "has_more": has_more,
            "next_page": f"page_{offset + limit}" if has_more else None,
            "url": f"/v1/{kind}s/search",
        }

    # --- expansion ----------------------------------------------------------------------

    def render(self, obj: dict, expand: Iterable[str]) -> dict:
        """A copy of `obj` (or of a list page) with the requested fields expanded."""
        rendered = copy.deepcopy(obj)
        for path in expand:
            if path.count(".") >= _MAX_EXPAND_DEPTH:
                raise invalid_request(
                    f"You cannot expand more than {_MAX_EXPAND_DEPTH} levels of a property.",
                    param="expand",
                )
            self._expand(rendered, path.split("."), path)
        return rendered

    def _expand(self, obj: dict, parts: list[str], full_path: str) -> None:
        head, rest = parts[0], parts[1:]
        if obj.get("object") in ("list", "search_result") and head == "data" and rest:
            for item in obj["data"]:
                self._expand(item, rest, full_path)
            return
        target_kind = _EXPANDABLE.get(obj.get("object"), {}).get(head)
        if target_kind is None:
            hint = ""
            if (
                obj.get("object") == "list"
                and head in _EXPANDABLE[obj["url"].split("/")[-1].rstrip("s")]
            ):
                hint = f" You may want to try expanding 'data.{head}' instead."
            raise invalid_request(
                f"This property cannot be expanded ({head}).{hint}", param="expand"
            )
        value = obj.get(head)
        if isinstance(value, str):
            target = self._objects[target_kind].get(value)
            obj[head] = copy.deepcopy(target) if target is not None else value
        if rest and isinstance(obj[head], dict):
            self._expand(obj[head], rest, full_path)

    # --- internals ----------------------------------------------------------------------

    def _now(self) -> int:
        self._last_created = max(self._last_created, int(self._clock()))
        return self._last_created

    def _insert(self, kind: str, obj: dict, *, indexed_at: float | None = None) -> None:
        self._objects[kind][obj["id"]] = obj
        self._position[obj["id"]] = len(self._order[kind])
        self._order[kind].append(obj["id"])
        self._last_created = max(self._last_created, obj["created"])
        if kind == "price":
            self._prices_of_product.setdefault(obj["product"], []).append(obj["id"])
            if obj["lookup_key"]:
                self._price_by_lookup_key[obj["lookup_key"]] = obj["id"]
        self.search_index.record(kind, obj["id"], copy.deepcopy(obj), at=indexed_at)

    def _reindex(self, kind: str, obj: dict) -> None:
        self.search_index.record(kind, obj["id"], copy.deepcopy(obj))

    def _page(
        self,
        kind: str,
        params: dict,
        filters: list[Callable[[dict], bool]],
        candidates: list[str] | None,
        *,
        url: str,
    ) -> dict:
        """One page of a list, newest first, with Stripe's cursor rules."""
        limit = _limit(params)
        objects = self._objects[kind]
        ids = self._order[kind] if candidates is None else candidates
        created = params.get("created")
        if created is not None:
            filters = [*filters, _created_filter(created)]

        def matching(indexes: Iterable[int]) -> Iterator[dict]:
            for index in indexes:
                obj = objects.get(ids[index])
                if obj is not None and all(f(obj) for f in filters):
                    yield obj

        if "ending_before" in params:
            first_newer = self._cursor_index(
                kind, ids, params["ending_before"], "ending_before", after=True
            )
            newer = matching(range(first_newer, len(ids)))  # oldest of the newer ones first
            page = [obj for _, obj in zip(range(limit + 1), newer)]
            has_more = len(page) > limit
            data = list(reversed(page[:limit]))
        else:
            start = len(ids) - 1
            if "starting_after" in params:
                start = (
                    self._cursor_index(
                        kind, ids, params["starting_after"], "starting_after", after=False
                    )
                    - 1
                )
            older = matching(range(start, -1, -1))
            page = [obj for _, obj in zip(range(limit + 1), older)]
            has_more = len(page) > limit
            data = page[:limit]
        return {"object": "list", "data": data, "has_more": has_more, "url": url}

    def _cursor_index(
        self, kind: str, ids: list[str], cursor: str, param: str, *, after: bool
    ) -> int:
        """Where `cursor` falls in `ids` (ascending insertion order), even if filtered out."""
        if cursor not in self._objects[kind]:
            raise resource_missing(kind, cursor, param=param)
        bisect = bisect_right if after else bisect_left
        return bisect(ids, self._position[cursor], key=self._position.__getitem__)


def _limit(params: dict) -> int:
    limit = params.get("limit", 10)
    if not 1 <= limit <= 100:
        bound = "greater than or equal to 1" if limit < 1 else "less than or equal to 100"
        raise invalid_request(f"This value must be {bound}.", param="limit")
    return limit


def _attribute_filters(params: dict, names: tuple[str, ...]) -> list[Callable[[dict], bool]]:
    def equals(name: str, value: Any) -> Callable[[dict], bool]:
        if name == "currency":
            value = value.lower()
        return lambda obj: obj.get(name) == value

    return [equals(name, params[name]) for name in names if name in params]


def _created_filter(created: int | dict) -> Callable[[dict], bool]:
    if isinstance(created, int):
        return lambda obj: obj["created"] == created
    bounds = {
        "gt": lambda c, v: c > v,
        "gte": lambda c, v: c >= v,
        "lt": lambda c, v: c < v,
        "lte": lambda c, v: c <= v,
    }
    return lambda obj: all(bounds[op](obj["created"], value) for op, value in created.items())


def _one_of(value: str, allowed: tuple[str, ...], *, param: str) -> str:
    """An enum parameter: the SDK types it `Literal[...] | str`, Stripe accepts only these."""
    if value not in allowed:
        raise invalid_request(
            f"Invalid {param}: must be one of {', '.join(allowed[:-1])}"
            f"{',' if len(allowed) > 2 else ''} or {allowed[-1]}",
            param=param,
        )
    return value


def _recurring(given: dict, *, param: str) -> dict:
    """A price's `recurring` hash as Stripe stores it (API versions since 2025-03-31.basil:
    no `aggregate_usage`), after Stripe's checks of interval, count and usage type."""
    interval = _one_of(given["interval"], RECURRING_INTERVALS, param=f"{param}[interval]")
    usage_type = _one_of(
        given.get("usage_type", "licensed"), USAGE_TYPES, param=f"{param}[usage_type]"
    )
    interval_count = given.get("interval_count", 1)
    if interval_count < 1:
        raise invalid_request("Invalid positive integer", param=f"{param}[interval_count]")
    if interval_count > MAX_INTERVAL_COUNT[interval]:
        raise invalid_request(
            "The maximum billing interval is three years (3 years, 36 months, 156 weeks or "
            f"{MAX_INTERVAL_COUNT['day']} days); {interval_count} {interval}s is longer.",
            param=f"{param}[interval_count]",
        )
    if usage_type == "metered" and not given.get("meter"):
        # Since 2025-03-31.basil a metered price needs a billing meter (legacy usage-based
        # billing was removed); the exact message and param are *unverified*.
        raise invalid_request(
            "A price with `usage_type=metered` requires a `meter`.", param=f"{param}[meter]"
        )
    return {
        "interval": interval,
        "interval_count": interval_count,
        "meter": given.get("meter"),
        "trial_period_days": given.get("trial_period_days"),
        "usage_type": usage_type,
    }


def _images(images: list[str]) -> list[str]:
    if len(images) > MAX_IMAGES:
        raise invalid_request(
            f"Invalid array: must have at most {MAX_IMAGES} elements", param="images"
        )
    return list(images)


def _metadata(current: dict, given: dict | str, *, param: str = "metadata") -> dict:
    """Merge metadata as Stripe does: `""` for a key removes it, `""` for the whole clears."""
    if given == "":
        return {}
    merged = dict(current)
    for key, value in given.items():
        if not isinstance(value, str):
            raise invalid_request(f"Invalid value type: {value} must be a string", param=param)
        if len(key) > MAX_METADATA_KEY_LENGTH:
            raise invalid_request(
                f"Metadata keys can have up to {MAX_METADATA_KEY_LENGTH} characters, but you passed in a key "
                f"that is {len(key)} characters. Invalid key: {key}",
                param=param,
            )
        if len(value) > MAX_METADATA_VALUE_LENGTH:
            raise invalid_request(
                f"Metadata values can have up to {MAX_METADATA_VALUE_LENGTH} characters, but you passed in a "
                f"value that is {len(value)} characters. Invalid value: {value}",
                param=param,
            )
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    if len(merged) > MAX_METADATA_KEYS:
        raise invalid_request(
            f"Metadata can have up to {MAX_METADATA_KEYS} keys, but you've set {len(merged)}. "
            "Email us at support+metadata@stripe.com for more information.",
            param=param,
        )
    return merged


def _require_non_empty(params: dict, name: str) -> None:
    if params.get(name, None) == "":
        raise invalid_request(
            f"You passed an empty string for '{name}'. We assume empty values are an attempt to unset a "
            f"parameter; however '{name}' cannot be unset. You should remove '{name}' from your request or "
            "supply a non-empty value.",
            code="parameter_invalid_empty",
            param=name,
        )
