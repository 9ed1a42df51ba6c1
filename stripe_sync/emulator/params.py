"""Request parameters: Stripe's bracket form encoding, checked against `stripe.params`.

The accepted parameters of every endpoint come from the TypedDicts that the installed
`stripe` package ships (`stripe.params.ProductCreateParams`, ...), so the emulator
accepts exactly what the SDK can send and answers anything else the way Stripe does
(`parameter_unknown`, `parameter_missing`, invalid integers and booleans).
"""

from __future__ import annotations

import re
import sys
import types
import typing
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, ForwardRef

import typing_extensions
from stripe._request_options import RequestOptions

from stripe_sync.emulator.errors import invalid_request, parameter_missing, parameter_unknown

# Client-side options (api_key, idempotency_key, ...) that share the TypedDicts but never
# travel as parameters.
_CLIENT_OPTIONS = frozenset(RequestOptions.__annotations__)
_INTEGER = re.compile(r"-?[0-9]+")


def decode_form(pairs: typing.Iterable[tuple[str, str]]) -> dict[str, Any]:
    """`a[b][0]=x&a[c][]=y` -> `{"a": {"b": {"0": "x"}, "c": {"0": "y"}}}`.

    Index keys stay strings here; the schema decides whether a level is a list or a
    hash (metadata keys may look like numbers).
    """
    root: dict[str, Any] = {}
    for raw_key, value in pairs:
        parts = _split_key(raw_key)
        node = root
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        last = parts[-1]
        if last == "":  # `expand[]=x`: append
            last = str(len(node))
        node[last] = value
    return root


def _split_key(raw_key: str) -> list[str]:
    head, bracket, rest = raw_key.partition("[")
    parts = [head]
    rest = bracket + rest
    while rest:
        if not rest.startswith("[") or "]" not in rest:
            raise invalid_request(f"Invalid parameter name: {raw_key}", param=raw_key)
        inner, _, rest = rest[1:].partition("]")
        if "[" in inner:
            raise invalid_request(f"Invalid parameter name: {raw_key}", param=raw_key)
        parts.append(inner)
    return parts


# --- schema -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    required: bool
    node: Node


@dataclass
class Node:
    """One level of a parameter schema compiled from a TypedDict annotation."""

    kind: str  # object | list | hash | union | literal | str | int | bool | decimal | float | any
    fields: dict[str, _Field] | None = None
    item: Node | None = None
    options: tuple[Node, ...] = ()
    literals: frozenset = frozenset()


_compiled: dict[type, Node] = {}


def schema_for(typed_dict: type) -> Node:
    """The compiled schema of one `stripe.params` TypedDict (memoised)."""
    node = _compiled.get(typed_dict)
    if node is None:
        node = _compiled[typed_dict] = Node("object", fields={})
        module_globals = vars(sys.modules[typed_dict.__module__])
        required = typed_dict.__required_keys__
        for name, annotation in typed_dict.__annotations__.items():
            if name in _CLIENT_OPTIONS:
                continue
            node.fields[name] = _Field(name in required, _compile(annotation, module_globals))
    return node


def _compile(annotation: Any, module_globals: dict) -> Node:
    if isinstance(annotation, str):
        annotation = ForwardRef(annotation)
    if isinstance(annotation, ForwardRef):
        annotation = eval(annotation.__forward_arg__, module_globals)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    name = getattr(origin, "_name", None) or getattr(origin, "__name__", None)
    if name in ("NotRequired", "Required"):
        return _compile(args[0], module_globals)
    if origin in (typing.Union, types.UnionType):
        return Node("union", options=tuple(_compile(a, module_globals) for a in args))
    if origin is typing.Literal:
        return Node("literal", literals=frozenset(args))
    if origin is list:
        return Node("list", item=_compile(args[0], module_globals))
    if origin is dict or name == "UntypedStripeObject":
        return Node("hash", item=_compile(args[-1], module_globals))
    if typing_extensions.is_typeddict(annotation):
        return schema_for(annotation)
    scalar = {str: "str", int: "int", bool: "bool", Decimal: "decimal", float: "float"}
    return Node(scalar.get(annotation, "any"))


# --- coercion ---------------------------------------------------------------------------


class _Mismatch(Exception):
    """A value doesn't fit one branch of a union; turned into a Stripe error at the top."""

    def __init__(self, error):
        self.error = error


def coerce(params: dict[str, Any], typed_dict: type) -> dict[str, Any]:
    """Check decoded parameters against a TypedDict; return them with Python types.

    Raises `StripeApiError` as Stripe answers: unknown, missing, or malformed parameter.
    """
    try:
        return _coerce(params, schema_for(typed_dict), None)
    except _Mismatch as mismatch:
        raise mismatch.error from None


def _path(parent: str | None, key: str) -> str:
    return key if parent is None else f"{parent}[{key}]"


def _coerce(value: Any, node: Node, path: str | None) -> Any:
    kind = node.kind
    if kind == "object":
        if not isinstance(value, dict):
            raise _Mismatch(invalid_request("Invalid object", param=path))
        unknown = [_path(path, key) for key in value if key not in node.fields]
        if unknown:
            raise _Mismatch(parameter_unknown(*unknown))
        result = {
            key: _coerce(item, node.fields[key].node, _path(path, key))
            for key, item in value.items()
        }
        for key, field in node.fields.items():
            if field.required and key not in value:
                raise _Mismatch(parameter_missing(_path(path, key)))
        return result
    if kind == "union":
        first_error = None
        # An empty string matches Literal[''] (Stripe's "unset") before anything else.
        for option in sorted(node.options, key=lambda o: o.kind != "literal"):
            try:
                return _coerce(value, option, path)
            except _Mismatch as mismatch:
                first_error = first_error or mismatch
        raise first_error
    if kind == "literal":
        if isinstance(value, str) and value in node.literals:
            return value
        raise _Mismatch(
            invalid_request(
                f"Invalid {path}: must be one of {', '.join(sorted(map(str, node.literals)))}",
                param=path,
            )
        )
    if kind == "list":
        if not isinstance(value, dict) or not all(k.isdigit() for k in value):
            raise _Mismatch(
                invalid_request("Invalid array", code="parameter_invalid_array", param=path)
            )
        ordered = sorted(value.items(), key=lambda kv: int(kv[0]))
        return [_coerce(item, node.item, f"{path}[{i}]") for i, (_, item) in enumerate(ordered)]
    if kind == "hash":
        if not isinstance(value, dict):
            raise _Mismatch(invalid_request("Invalid hash", param=path))
        return {k: _coerce(v, node.item, _path(path, k)) for k, v in value.items()}
    if isinstance(value, dict):
        raise _Mismatch(invalid_request(f"Invalid {kind}", param=path))
    if kind == "int":
        if _INTEGER.fullmatch(value):
            return int(value)
        raise _Mismatch(
            invalid_request(
                f"Invalid integer: {value}", code="parameter_invalid_integer", param=path
            )
        )
    if kind == "bool":
        if value in ("true", "false"):
            return value == "true"
        raise _Mismatch(invalid_request(f"Invalid boolean: {value}", param=path))
    if kind in ("decimal", "float"):
        try:
            return Decimal(value) if kind == "decimal" else float(value)
        except (InvalidOperation, ValueError):
            raise _Mismatch(invalid_request(f"Invalid decimal: {value}", param=path)) from None
    return value
