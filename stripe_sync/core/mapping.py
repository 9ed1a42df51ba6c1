"""How a catalog's own schema maps onto the pipeline's fields, as reverse-ETL tools do it: which
column holds each field, the unit of its prices, which rows are active, skipped or deleted,
and which columns become Stripe metadata.

Plain data and the Python side of its meaning; the catalogs (`stripe_sync.backends`) turn it
into SQL or PostgREST. The default mapping is the project's own table: every field in the
column of its name.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from stripe_sync.core.contract import HELD_PRODUCT_ID, SOURCE_COLUMNS
from stripe_sync.core.identity import METADATA_PREFIX

# Fields a row can do without: mapped to no column, they are empty (description, images),
# the currency setting (currency), always active (active), unknown (updated_at: the change
# sensor then sees no edits, only deletions).
OPTIONAL_FIELDS = ("description", "currency", "images", "active", "updated_at")
# Fields naming what a row already is in Stripe, where another tool wrote it (read only).
ID_FIELDS = ("stripe_product_id",)
PriceUnit = Literal["major", "minor"]
_PRICE_OF_ROW = ("price", "currency")  # a row's own price: none with a prices model
# How the catalog hands over metadata columns: "metadata.<position>" (a PostgREST alias
# takes only letters, digits and _), renamed to "metadata.<key>" by `shaped`.
_METADATA_LABEL = "metadata__{}"
# The same column as the driver or PostgREST gives it, where an array is a list (its text is
# PostgreSQL's literal, `{tag4,line2}`); only an array's is used.
_METADATA_VALUE_LABEL = "metadata_value__{}"


@dataclass(frozen=True)
class ValueRule:
    """A column and the values that make a rule hold: `status in (draft)`. Without values,
    the rule holds where the column is true (active) or set, not NULL (deleted)."""

    column: str
    values: tuple[Any, ...] = ()

    def holds(self, value: Any) -> bool:
        """Whether a value read from the column makes the rule hold (values compare as text,
        so `1` in the settings matches 1 and "1")."""
        if not self.values:
            return value is not None and value is not False
        return value is not None and value_text(value) in {value_text(v) for v in self.values}

    def describe(self) -> str:
        if not self.values:
            return self.column
        return f"{self.column} in ({', '.join(map(value_text, self.values))})"


@dataclass(frozen=True)
class FieldMapping:
    """Which catalog column holds each pipeline field (None: no column) and what it means."""

    columns: Mapping[str, str | None] = field(default_factory=dict)
    price_unit: PriceUnit = "major"
    currency: str | None = None  # every row's currency, when no currency column is mapped
    active: ValueRule | None = None  # None: the `active` field's column, a boolean
    skip: ValueRule | None = None  # rows that must not be in Stripe (yet)
    deleted: ValueRule | None = None  # soft deletes: a set column (or one of its values)
    metadata: Mapping[str, str] = field(default_factory=dict)  # Stripe key -> column
    # The prices come from a prices model (`PricesModel`): a row has no price or currency.
    prices_elsewhere: bool = False

    def __post_init__(self) -> None:
        unknown = sorted(set(self.columns) - {*SOURCE_COLUMNS, *ID_FIELDS})
        if unknown:
            raise ValueError(f"{', '.join(unknown)} is not a field of the catalog")
        if self.price_unit not in ("major", "minor"):
            raise ValueError(f"price_unit must be major or minor, not {self.price_unit!r}")
        if self.prices_elsewhere:
            mapped = [name for name in _PRICE_OF_ROW if self.columns.get(name)]
            if mapped or self.currency is not None:
                raise ValueError(
                    f"the field {(mapped or ['currency'])[0]} of a row is unused: the prices "
                    "come from the prices table"
                )
        columns = {
            name: self.columns.get(
                name, None if self.prices_elsewhere and name in _PRICE_OF_ROW else name
            )
            for name in SOURCE_COLUMNS
        } | {name: self.columns.get(name) for name in ID_FIELDS}
        if self.active is not None:
            columns["active"] = self.active.column
        if self.currency is not None:
            columns["currency"] = None
        required = [name for name in SOURCE_COLUMNS if not columns[name]]
        optional = OPTIONAL_FIELDS + (_PRICE_OF_ROW if self.prices_elsewhere else ())
        required = [name for name in required if name not in optional]
        if required:
            raise ValueError(f"the field {required[0]} needs a column")
        object.__setattr__(self, "columns", MappingProxyType(columns))
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    @property
    def is_default(self) -> bool:
        return self == FieldMapping(metadata=self.metadata)

    def column(self, name: str) -> str | None:
        """The column of a field; None when the field has none."""
        return self.columns[name]

    def read(self) -> dict[str, str]:
        """What a read selects: label -> column, the fields with a column (labelled by field)
        then the metadata columns."""
        return {
            HELD_PRODUCT_ID if name in ID_FIELDS else name: column
            for name, column in self.columns.items()
            if column
        } | {
            label.format(position): column
            for position, column in enumerate(self.metadata.values())
            for label in (_METADATA_LABEL, _METADATA_VALUE_LABEL)
        }

    def referenced(self) -> list[tuple[str, str]]:
        """Every column the mapping reads, with the setting that names it:
        ("catalog.columns.price", "price_cents")."""
        keys = [
            (
                "catalog.active" if name == "active" and self.active else f"catalog.columns.{name}",
                column,
            )
            for name, column in self.columns.items()
            if column
        ]
        keys += [(f"catalog.{name}", rule.column) for name, rule in self.removal_rules()]
        keys += [(f"catalog.metadata.{key}", column) for key, column in self.metadata.items()]
        return keys

    def removal_rules(self) -> list[tuple[str, ValueRule]]:
        """The rules that leave a row out of the catalog: ("deleted", rule), ("skip", rule)."""
        return [(name, rule) for name in ("deleted", "skip") if (rule := getattr(self, name))]

    def shaped(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A row as read (labels of `read()`, write-back columns) as the contract hands it over:
        every field (None without a column), `active` as true or false where the mapping
        decides it, metadata under `metadata.<key>`."""
        shaped = {name: row.get(name) for name in SOURCE_COLUMNS}
        if self.active is not None and self.active.values:
            shaped["active"] = self.active.holds(row.get("active"))
        elif self.columns["active"] is None:
            shaped["active"] = True
        for position, key in enumerate(self.metadata):
            shaped[METADATA_PREFIX + key] = metadata_text(
                row.get(_METADATA_LABEL.format(position)),
                row.get(_METADATA_VALUE_LABEL.format(position)),
            )
        for name, value in row.items():
            if name not in shaped and not name.startswith(("metadata__", "metadata_value__")):
                shaped[name] = value  # the write-back columns
        return shaped

    def describe(self) -> list[str]:
        """The mapping in effect, a line a field, e.g. `price <- price_cents (minor units)`."""
        lines = []
        for name, column in self.columns.items():
            if (self.prices_elsewhere and name in _PRICE_OF_ROW) or (
                name in ID_FIELDS and column is None
            ):
                continue
            if name == "price":
                lines.append(f"price <- {column} ({self.price_unit} units)")
            elif name == "currency" and column is None:
                lines.append(f"currency: {self.currency or 'the default currency'} for every row")
            elif name == "active" and self.active is not None and self.active.values:
                lines.append(f"active <- {self.active.describe()}")
            else:
                lines.append(f"{name} <- {column or '(no column)'}")
        for name, rule in self.removal_rules():
            condition = rule.describe() if rule.values else f"{rule.column} is set"
            lines.append(f"{name}: rows where {condition}" + _FOR_REMOVED)
        lines += [f"metadata.{key} <- {column}" for key, column in self.metadata.items()]
        return lines


DEFAULT_MAPPING = FieldMapping()
_FOR_REMOVED = " (left out: removed from Stripe if synced before)"


def read_as_text(label: str) -> bool:
    """Whether a read casts the column of this label to text: the id (the database's own
    text), the price (exact, never a float) and metadata (Stripe takes strings)."""
    return label in ("id", "price") or label.startswith(_METADATA_LABEL.format(""))


def read_as_is(label: str) -> bool:
    """Whether a read hands the column of this label over as the driver gives it, unconverted
    (a stray value can't break the read): a metadata column's value, for its arrays."""
    return label.startswith(_METADATA_VALUE_LABEL.format(""))


def metadata_text(text: Any, value: Any) -> Any:
    """A metadata column's value as Stripe gets it: an array's elements (a PostgreSQL array,
    or a JSON array) joined by ", ", NULLs left out; anything else its text."""
    if not isinstance(value, list):
        return text
    return ", ".join(_element_text(element) for element in _flattened(value) if element is not None)


def _flattened(values: list) -> Iterator[Any]:
    """The elements of an array, those of arrays in it included (a 2-D array's rows)."""
    for value in values:
        if isinstance(value, list):
            yield from _flattened(value)
        else:
            yield value


def _element_text(element: Any) -> str:
    """An array's element as text: a JSON object as JSON."""
    if isinstance(element, dict):
        return json.dumps(element, separators=(",", ":"), ensure_ascii=False)
    return value_text(element)


def metadata_of(columns: Iterable[str], keyed: Mapping[str, str]) -> dict[str, str]:
    """Metadata key -> column from the list of columns copied under their own names and the
    key -> column map."""
    return {column: column for column in columns} | dict(keyed)


def value_text(value: Any) -> str:
    """A rule's value as text, as SQL and PostgREST spell it (true, not True)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


# A boolean's spellings, as PostgreSQL reads them (any case).
_BOOLEAN_TEXTS = {
    **dict.fromkeys(("true", "t", "yes", "y", "on", "1"), True),
    **dict.fromkeys(("false", "f", "no", "n", "off", "0"), False),
}


def value_boolean(value: Any) -> bool | None:
    """A rule's value as a boolean (`true`, `False`, `t`, `0`...); None when it is none."""
    return _BOOLEAN_TEXTS.get(value_text(value).strip().lower())


# A price row's fields (`prices:` in the settings): its id, the catalog id of its product,
# its amount and currency; the rest optional (no column: one-time, every 1, active, the
# product's first price by id is its default, no nickname).
PRICE_FIELDS = (
    "id",
    "product_id",
    "amount",
    "currency",
    "interval",
    "interval_count",
    "active",
    "default",
    "nickname",
)
REQUIRED_PRICE_FIELDS = ("id", "product_id", "amount", "currency")
# Read as the database's own text: ids compare as the catalog's do, amounts stay exact.
PRICE_FIELDS_AS_TEXT = ("id", "product_id", "amount")


@dataclass(frozen=True)
class PriceMapping:
    """Which column of the prices model holds each price field (None: no column) and the
    unit of its amounts."""

    columns: Mapping[str, str | None] = field(default_factory=dict)
    price_unit: PriceUnit = "major"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.columns) - set(PRICE_FIELDS))
        if unknown:
            raise ValueError(f"{', '.join(unknown)} is not a field of a price")
        if self.price_unit not in ("major", "minor"):
            raise ValueError(f"price_unit must be major or minor, not {self.price_unit!r}")
        columns = {
            name: self.columns.get(name, name if name in REQUIRED_PRICE_FIELDS else None)
            for name in PRICE_FIELDS
        }
        required = [name for name in REQUIRED_PRICE_FIELDS if not columns[name]]
        if required:
            raise ValueError(f"the field {required[0]} needs a column")
        object.__setattr__(self, "columns", MappingProxyType(columns))

    def column(self, name: str) -> str | None:
        return self.columns[name]

    def read(self) -> dict[str, str]:
        """What a read selects: field -> column, the fields with a column."""
        return {name: column for name, column in self.columns.items() if column}

    def referenced(self) -> list[tuple[str, str]]:
        """Every column the mapping reads, with the setting that names it."""
        return [(f"prices.columns.{name}", column) for name, column in self.read().items()]

    def shaped(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """A price row as read: every field (None without a column)."""
        return {name: row.get(name) for name in PRICE_FIELDS}

    def describe(self) -> list[str]:
        return [
            f"price {name} <- {column}"
            + (f" ({self.price_unit} units)" if name == "amount" else "")
            for name, column in self.read().items()
        ]


@dataclass(frozen=True)
class PricesModel:
    """Where a catalog's prices are: a table or view (or, for SQL catalogs, a query) of its
    database, narrowed by `where`, its columns mapped by `mapping`."""

    mapping: PriceMapping
    table: str | None = None
    query: str | None = None
    where: str | None = None

    def describe(self) -> str:
        model = f"table {self.table}" if self.query is None else "prices.query"
        return model + (f" where {self.where}" if self.where else "")
