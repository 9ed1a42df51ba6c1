"""A subset look-alike of PostgREST for tests, in front of a real PostgreSQL.

It is not PostgREST: it speaks only the requests supabase-py sends for the catalog
(`/rest/v1/<table>`: GET and HEAD with `select` (columns, `*`, `column::type`),
filters `eq/neq/gt/gte/lt/lte/is` (and `not.`), `or=(...)` logic trees, `order`, `limit`
and `Prefer: count=exact`; PATCH with filters, a JSON object and `Prefer: return=...`; `POST /rest/v1/rpc/<function>` with
named JSON arguments). Anything else is answered 400 PGRST100, so a client change
shows up as a failing test rather than a silently different request.

Roles work as on Supabase: the key is a JWT signed HS256 with the project's secret,
its `role` claim (`anon`, `authenticated`, `service_role`) becomes `SET LOCAL ROLE` in
the request's transaction, and PostgreSQL's own grants decide what it may do. Errors
have PostgREST's shape `{"code", "message", "details", "hint"}` and status codes.
Every request is recorded (method, path, query, headers, JSON body) for wire-format
tests.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

import jwt
import psycopg
from psycopg import sql

SUPABASE_ROLES = ("anon", "authenticated", "service_role")
_TEN_YEARS_S = 10 * 365 * 24 * 3600
_OPERATORS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_ORDER_WORDS = {
    "asc": "asc",
    "desc": "desc",
    "nullsfirst": "nulls first",
    "nullslast": "nulls last",
}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TABLE_PATH = re.compile(r"^/rest/v1/(?P<table>[^/]+)$")
_RPC_PATH = re.compile(r"^/rest/v1/rpc/(?P<function>[^/]+)$")
_RESERVED = ("select", "order", "limit")  # query parameters that are not filters
_UNSUPPORTED = ("offset", "and", "or", "not", "columns", "on_conflict")
_STATUS_BY_SQLSTATE = {"42703": 400, "42P01": 404, "42883": 404, "23505": 409, "23503": 409}


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]  # names in lower case
    body: object  # the parsed JSON body, None without one


class PostgrestError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"code": code, "details": details, "hint": hint, "message": message}


def mint_key(jwt_secret: str, role: str) -> str:
    """A Supabase-style API key: a JWT with the `role` claim, signed with the secret."""
    now = int(time.time())
    claims = {
        "iss": "supabase",
        "ref": "lookalike",
        "role": role,
        "iat": now,
        "exp": now + _TEN_YEARS_S,
    }
    return jwt.encode(claims, jwt_secret, algorithm="HS256")


def anon_key(jwt_secret: str) -> str:
    return mint_key(jwt_secret, "anon")


def service_role_key(jwt_secret: str) -> str:
    return mint_key(jwt_secret, "service_role")


def create_supabase_roles(connection: psycopg.Connection) -> None:
    """Create Supabase's API roles if missing (roles are cluster-wide: tolerate races)."""
    with connection.transaction():
        connection.execute("select pg_advisory_xact_lock(hashtext('stripe_sync supabase roles'))")
        for role in SUPABASE_ROLES:
            options = "nologin bypassrls" if role == "service_role" else "nologin"
            connection.execute(
                sql.SQL(
                    "do $$ begin create role {} {}; exception when duplicate_object "
                    "or unique_violation then null; end $$"
                ).format(sql.Identifier(role), sql.SQL(options))
            )
        connection.execute("grant usage on schema public to anon, authenticated, service_role")


def grant_like_supabase(connection: psycopg.Connection, table: str) -> None:
    """Table grants as this project expects on Supabase: anon reads, service_role does all."""
    name = sql.Identifier("public", table)
    connection.execute(sql.SQL("grant select on {} to anon, authenticated").format(name))
    connection.execute(sql.SQL("grant all on {} to service_role").format(name))


@contextlib.contextmanager
def run_postgrest(
    database_url: str, jwt_secret: str, request_log: list[RecordedRequest] | None = None
) -> Iterator[str]:
    """Serve the look-alike on a free loopback port; yield its base URL (what
    SUPABASE_URL would be). Requests are appended to `request_log` when given."""
    api = _Api(psycopg.connect(database_url, autocommit=True), jwt_secret, request_log)
    handler = type("Handler", (_Handler,), {"api": api})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="postgrest-look-alike", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        api.connection.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects
    disable_nagle_algorithm = True  # headers and body go out in two writes
    api: _Api

    def do_GET(self) -> None:
        self._answer()

    do_HEAD = do_PATCH = do_POST = do_GET

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass

    def _answer(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        request = RecordedRequest(
            method=self.command,
            path=unquote(url.path),
            query=parse_qsl(url.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=json.loads(raw_body) if raw_body else None,
        )
        status, headers, body = self.api.handle(request)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class _Api:
    def __init__(
        self,
        connection: psycopg.Connection,
        jwt_secret: str,
        request_log: list[RecordedRequest] | None,
    ) -> None:
        self.connection = connection
        self._jwt_secret = jwt_secret
        self._request_log = request_log
        self._lock = threading.Lock()  # one connection, one request at a time

    def handle(self, request: RecordedRequest) -> tuple[int, dict[str, str], bytes]:
        if self._request_log is not None:
            self._request_log.append(request)
        try:
            status, headers, body = self._route(request)
        except PostgrestError as error:
            status, headers, body = error.status, {}, json.dumps(error.body)
        headers = {"Content-Type": "application/json; charset=utf-8", **headers}
        return status, headers, body.encode()

    def _route(self, request: RecordedRequest) -> tuple[int, dict[str, str], str]:
        role = self._role(request.headers)
        if match := _RPC_PATH.match(request.path):
            if request.method != "POST":
                raise _unsupported(f"{request.method} on a function")
            schema = request.headers.get("content-profile", "public")
            return self._in_transaction(role, self._call, schema, match["function"], request)
        if match := _TABLE_PATH.match(request.path):
            read = request.method in ("GET", "HEAD")
            if not read and request.method != "PATCH":
                raise _unsupported(f"{request.method} on a table")
            schema = request.headers.get("accept-profile" if read else "content-profile", "public")
            action = self._select if read else self._update
            return self._in_transaction(role, action, schema, match["table"], request)
        raise PostgrestError(
            404, "PGRST125", f"Invalid path specified in request URL: {request.path}"
        )

    def _role(self, headers: dict[str, str]) -> str:
        """The role of the request's key: Authorization's bearer token, else apikey."""
        token = headers.get("authorization", "").removeprefix("Bearer ").strip()
        token = token or headers.get("apikey", "")
        if not token:
            raise PostgrestError(
                401,
                "PGRST302",
                "No API key found in request",
                hint="No `apikey` request header or url param was found.",
            )
        try:
            claims = jwt.decode(
                token, self._jwt_secret, algorithms=["HS256"], options={"verify_aud": False}
            )
        except jwt.ExpiredSignatureError:
            raise PostgrestError(401, "PGRST303", "JWT expired") from None
        except jwt.InvalidTokenError:
            raise PostgrestError(401, "PGRST301", "JWSError JWSInvalidSignature") from None
        return claims.get("role", "anon")

    def _in_transaction(
        self, role: str, action, schema: str, name: str, request: RecordedRequest
    ) -> tuple[int, dict[str, str], str]:
        try:
            with self._lock, self.connection.transaction():
                self.connection.execute(sql.SQL("set local role {}").format(sql.Identifier(role)))
                return action(schema, name, request)
        except psycopg.Error as error:
            raise _from_database(error, role) from None

    def _select(self, schema: str, table: str, request: RecordedRequest):
        self._require_table(schema, table)
        params = dict(request.query)
        target = sql.Identifier(schema, table)
        where, values = _where(table, request.query)
        query = sql.SQL("select {} from {} as {}{}{}{}").format(
            _select_list(table, params.get("select", "*")),
            target,
            sql.Identifier(table),
            where,
            _order_by(table, params.get("order")),
            _limit(params.get("limit")),
        )
        rows, shown = self.connection.execute(
            sql.SQL("select coalesce(json_agg(r), '[]')::text, count(*) from ({}) r").format(query),
            values,
        ).fetchone()
        total = "*"
        if _prefer(request.headers).get("count") == "exact":
            total = self.connection.execute(
                sql.SQL("select count(*) from {} as {}{}").format(
                    target, sql.Identifier(table), where
                ),
                values,
            ).fetchone()[0]
        return 200, {"Content-Range": f"{_range(shown)}/{total}"}, rows

    def _update(self, schema: str, table: str, request: RecordedRequest):
        columns = self._require_table(schema, table)
        if not isinstance(request.body, dict):
            raise _unsupported("a PATCH body that is not one JSON object")
        for column in request.body:
            if column not in columns:
                raise PostgrestError(
                    400,
                    "PGRST204",
                    f"Could not find the '{column}' column of '{table}' in the schema cache",
                )
        where, values = _where(table, request.query)
        if not values:  # Supabase runs pg-safeupdate
            raise PostgrestError(400, "21000", "UPDATE requires a WHERE clause")
        target = sql.Identifier(schema, table)
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = p.{}").format(sql.Identifier(column), sql.Identifier(column))
            for column in request.body
        )
        update = sql.SQL(
            "update {} as {} set {} from json_populate_record(null::{}, %s::json) as p{} "
            "returning {}"
        ).format(
            target,
            sql.Identifier(table),
            assignments,
            target,
            where,
            _select_list(table, dict(request.query).get("select", "*")),
        )
        rows, updated = self.connection.execute(
            sql.SQL(
                "with updated as ({}) select coalesce(json_agg(u), '[]')::text, count(*) "
                "from updated u"
            ).format(update),
            [json.dumps(request.body), *values],
        ).fetchone()
        headers = {"Content-Range": f"{_range(updated)}/*"}
        if _prefer(request.headers).get("return") == "representation":
            return 200, headers, rows
        return 204, headers, ""

    def _call(self, schema: str, function: str, request: RecordedRequest):
        arguments = request.body if isinstance(request.body, dict) else {}
        candidates = self.connection.execute(
            "select p.proargnames, array(select format_type(t, null) from unnest(p.proargtypes) t) "
            "from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
            "where n.nspname = %s and p.proname = %s",
            [schema, function],
        ).fetchall()
        for names, types in candidates:
            if set(names or ()) == set(arguments):
                break
        else:
            listed = ", ".join(sorted(arguments))
            raise PostgrestError(
                404,
                "PGRST202",
                f"Could not find the function {schema}.{function}({listed}) in the schema cache",
                details=f"Searched for the function {schema}.{function} with parameters "
                f"{listed} or with a single unnamed json/jsonb parameter, but no matches "
                "were found in the schema cache.",
            )
        call = sql.SQL("select to_json({}({}))::text").format(
            sql.Identifier(schema, function),
            sql.SQL(", ").join(
                sql.SQL("{} := %s::{}").format(sql.Identifier(name), sql.SQL(type_))
                for name, type_ in zip(names, types)
            ),
        )
        values = [_argument(arguments[name], type_) for name, type_ in zip(names, types)]
        return 200, {}, self.connection.execute(call, values).fetchone()[0] or "null"

    def _require_table(self, schema: str, table: str) -> set[str]:
        """The table's column names; 404 PGRST205 when there is no such table."""
        oid = self.connection.execute(
            "select to_regclass(format('%%I.%%I', %s::text, %s::text))::oid", [schema, table]
        ).fetchone()[0]
        if oid is None:
            raise PostgrestError(
                404,
                "PGRST205",
                f"Could not find the table '{schema}.{table}' in the schema cache",
            )
        rows = self.connection.execute(
            "select attname from pg_attribute where attrelid = %s and attnum > 0 "
            "and not attisdropped",
            [oid],
        ).fetchall()
        return {row[0] for row in rows}


_ALIASED = re.compile(r"(?:(\w+):(?!:))?(.*)")  # PostgREST's `alias:column::type`


def _select_list(table: str, select: str) -> sql.Composable:
    items = []
    for item in select.split(","):
        alias, item = _ALIASED.fullmatch(item).groups(default="")
        column, _, type_ = item.partition("::")
        if column == "*" and not type_:
            items.append(sql.SQL("{}.*").format(sql.Identifier(table)))
            continue
        if (
            not _NAME.match(column)
            or (type_ and not _NAME.match(type_))
            or (alias and not _NAME.match(alias))
        ):
            raise _unsupported(f"the select item {item!r}")
        reference = sql.Identifier(table, column)
        if type_:
            reference = sql.SQL("{}::{}").format(reference, sql.SQL(type_))
        items.append(sql.SQL("{} as {}").format(reference, sql.Identifier(alias or column)))
    return sql.SQL(", ").join(items)


def _where(table: str, query: list[tuple[str, str]]) -> tuple[sql.Composable, list[str]]:
    """`column=[not.]op.value` filters (op also `is`: null, true, false) and `or=(...)`
    logic trees; the value is an untyped literal PostgreSQL casts to the column's type, as
    PostgREST does (an unknown column fails in PostgreSQL: 42703)."""
    conditions, values = [], []
    for column, filter_ in query:
        if column in _RESERVED:
            continue
        if column == "or" and filter_.startswith("("):
            conditions.append(_logic_tree(table, f"or{filter_}", values))
        else:
            conditions.append(_filter(table, column, filter_, values))
    if not conditions:
        return sql.SQL(""), []
    return sql.SQL(" where ") + sql.SQL(" and ").join(conditions), values


def _filter(table: str, column: str, filter_: str, values: list[str]) -> sql.Composable:
    negated = filter_.startswith("not.")
    operator, _, value = filter_.removeprefix("not.").partition(".")
    is_value = {"null": "null", "true": "true", "false": "false"}.get(value)
    if (
        column in _UNSUPPORTED
        or not _NAME.match(column)
        or (operator not in _OPERATORS and not (operator == "is" and is_value))
    ):
        raise _unsupported(f"the query parameter {column}={filter_}")
    if operator == "is":
        condition = sql.SQL("{} is {}").format(sql.Identifier(table, column), sql.SQL(is_value))
    else:
        condition = sql.SQL("{} {} %s").format(
            sql.Identifier(table, column), sql.SQL(_OPERATORS[operator])
        )
        values.append(value)
    return sql.SQL("not ({})").format(condition) if negated else condition


# A logic tree: `or(` / `and(`, then filters `column.op.value` (the value bare, or double-quoted
# with backslash escapes) and nested trees, separated by commas, then `)`.
_TREE_TOKEN = re.compile(r'(and|or)\(|\)|,|(\w+)\.(\w+)\.(?:"((?:[^"\\]|\\.)*)"|([^,()"]*))')


def _logic_tree(table: str, text: str, values: list[str]) -> sql.Composable:
    tokens = list(_TREE_TOKEN.finditer(text))
    if "".join(token[0] for token in tokens) != text:
        raise _unsupported(f"the logic tree {text!r}")
    stack: list[tuple[str, list[sql.Composable]]] = []
    for token in tokens:
        if token[1]:
            stack.append((token[1], []))
        elif token[0] == ")" and stack:
            operator, terms = stack.pop()
            tree = sql.SQL("({})").format(sql.SQL(f" {operator} ").join(terms))
            if not stack:
                return tree
            stack[-1][1].append(tree)
        elif token[2] and stack:
            quoted = token[4] is not None
            value = re.sub(r"\\(.)", r"\1", token[4]) if quoted else token[5]
            stack[-1][1].append(_filter(table, token[2], f"{token[3]}.{value}", values))
        elif token[0] != "," or not stack:
            break
    raise _unsupported(f"the logic tree {text!r}")


def _order_by(table: str, order: str | None) -> sql.Composable:
    if not order:
        return sql.SQL("")
    terms = []
    for term in order.split(","):
        column, *modifiers = term.split(".")
        if not _NAME.match(column) or any(m not in _ORDER_WORDS for m in modifiers):
            raise _unsupported(f"the order {term!r}")
        terms.append(
            sql.SQL(" ").join(
                [sql.Identifier(table, column), *(sql.SQL(_ORDER_WORDS[m]) for m in modifiers)]
            )
        )
    return sql.SQL(" order by ") + sql.SQL(", ").join(terms)


def _limit(limit: str | None) -> sql.Composable:
    if limit is None:
        return sql.SQL("")
    if not limit.isdigit():
        raise _unsupported(f"the limit {limit!r}")
    return sql.SQL(" limit {}").format(sql.Literal(int(limit)))


def _range(rows: int) -> str:
    return f"0-{rows - 1}" if rows else "*"


def _argument(value: object, type_: str) -> str | None:
    """A JSON argument as text for `%s::type`: JSON itself for json/jsonb parameters."""
    if type_ in ("json", "jsonb"):
        return json.dumps(value)
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value)


def _prefer(headers: dict[str, str]) -> dict[str, str]:
    preferences = (part.strip().partition("=") for part in headers.get("prefer", "").split(","))
    return {name: value for name, _, value in preferences if name}


def _unsupported(what: str) -> PostgrestError:
    return PostgrestError(400, "PGRST100", f"The PostgREST look-alike does not support {what}")


def _from_database(error: psycopg.Error, role: str) -> PostgrestError:
    """PostgREST's answer to a PostgreSQL error: 401 for an anonymous permission error."""
    diag = error.diag
    code = error.sqlstate or "XX000"
    if code == "42501":
        status = 401 if role == "anon" else 403
    else:
        status = _STATUS_BY_SQLSTATE.get(code, 400 if code[:2] in ("21", "22", "23") else 500)
    return PostgrestError(
        status,
        code,
        diag.message_primary or str(error),
        details=diag.message_detail,
        hint=diag.message_hint,
    )
