"""A subset look-alike of PostgREST (12) for tests, in front of a real PostgreSQL.

It is not PostgREST: it speaks only the requests supabase-py sends for the catalog and
the state tables, on `/rest/v1/<table>`:

- GET and HEAD with `select` (columns, `*`, `alias:column::type`), filters, `order`,
  `limit` and `Prefer: count=exact`, at most `max_rows` rows an answer as PostgREST's
  `db-max-rows` makes it (Supabase's "Max rows", 1,000 unless a project changes it): the
  limit becomes min(limit, max_rows), `Content-Range` says which rows came (`0-999/*`, or
  `0-999/5000` with a count) and a count larger than the rows answered makes the status 206
  (`treeRestrictRange` in PostgREST's Plan.hs, `rangeStatusHeader` in its RangeQuery.hs);
  writes are never capped; functions are, but those called here return one value (a JSON
  array), which no cap cuts;
- POST (insert) of a JSON object or an array of objects with the same keys (else 400
  PGRST102), or any objects with `columns=` (missing keys are null, or the column's
  default with `Prefer: missing=default`); `Prefer: resolution=merge-duplicates` makes it an
  upsert (`ON CONFLICT (on_conflict= columns, else the primary key) DO UPDATE SET` each
  posted column), `resolution=ignore-duplicates` an `ON CONFLICT DO NOTHING`; 201, or 200
  for an upsert that inserted nothing; `Prefer: return=representation` answers the rows
  (honouring `select`), `return=minimal` (the default) no body;
- PATCH with filters and a JSON object, DELETE with filters; both 204, or 200 and the
  rows with `Prefer: return=representation`; without a filter both are refused as
  Supabase's pg-safeupdate does (400 21000);

and `POST /rest/v1/rpc/<function>` with named JSON arguments. Filters are
`column=[not.]op.value` with op `eq/neq/gt/gte/lt/lte`, `is` (null, true, false) and
`in.(a,b,"c,d")` (double quotes for values with `,` or `)`, backslash escapes inside them),
and `or=(...)` logic trees of those. Anything else is answered 400 PGRST100, so a client
change shows up as a failing test rather than a silently different request.

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
import random
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

import jwt
import psycopg
from psycopg import sql

SUPABASE_ROLES = ("anon", "authenticated", "service_role")
SUPABASE_MAX_ROWS = 1_000  # a Supabase project's "Max rows" unless it is changed
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
_RESERVED = ("select", "order", "limit")  # query parameters of a read that are not filters
_UNSUPPORTED = ("offset", "and", "or", "not")  # query parameters the look-alike never speaks
_INSERT_PARAMETERS = ("select", "columns", "on_conflict")  # POST's only query parameters
_NOT_FILTERS = (*_RESERVED, *_UNSUPPORTED, *_INSERT_PARAMETERS)
_STATUS_BY_SQLSTATE = {
    "42703": 400,
    "42P01": 404,
    "42P10": 400,  # ON CONFLICT columns without a unique index: PostgREST's default 400
    "42883": 404,
    "23505": 409,
    "23503": 409,
}
# What PostgREST adds to an upsert's INSERT ... SELECT (+ 1 a row) and DO UPDATE (- 1 a
# row) to count the rows it inserted: an upsert that inserted none answers 200, not 201.
_COUNT_INSERTED = sql.SQL(
    "set_config('pgrst.inserted', (coalesce(nullif(current_setting('pgrst.inserted', true), "
    "'')::int, 0) {} 1)::text, true) <> {}"
)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]  # names in lower case
    body: object  # the parsed JSON body, None without one (or when it is not JSON)
    raw_body: bytes = field(default=b"", repr=False, compare=False)  # the body as sent
    target: str = field(default="", repr=False, compare=False)  # the request line's URL


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


@dataclass
class GatewayFaults:
    """What Supabase's gateway does to a seeded share of requests, before PostgREST sees them:
    answer 503 (an upstream blip), 429 with Retry-After (its rate limit), or stall for
    `stall_s` and only then carry the request out (the client has given up by then: a write
    happens without its answer). Off until a test sets a share."""

    seed: int = 0
    share_503: float = 0.0
    share_429: float = 0.0
    share_stall: float = 0.0
    stall_s: float = 3.0
    retry_after_s: int = 1
    counts: dict[str, int] = field(default_factory=dict)
    _random: random.Random = field(default_factory=random.Random, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def configure(self, **knobs: float) -> None:
        """Set some knobs and start the seeded sequence again (`off()`: all shares 0)."""
        with self._lock:
            for name, value in knobs.items():
                setattr(self, name, value)
            self._random = random.Random(self.seed)
            self.counts = {}

    def off(self) -> None:
        self.configure(share_503=0.0, share_429=0.0, share_stall=0.0)

    def draw(self) -> str | None:
        with self._lock:
            roll = self._random.random()
            for kind, share in (
                ("503", self.share_503),
                ("429", self.share_429),
                ("stall", self.share_stall),
            ):
                if roll < share:
                    self.counts[kind] = self.counts.get(kind, 0) + 1
                    return kind
                roll -= share
            return None


@contextlib.contextmanager
def run_postgrest(
    database_url: str,
    jwt_secret: str,
    request_log: list[RecordedRequest] | None = None,
    faults: GatewayFaults | None = None,
    *,
    max_rows: int | None = SUPABASE_MAX_ROWS,
) -> Iterator[str]:
    """Serve the look-alike on a free loopback port; yield its base URL (what
    SUPABASE_URL would be). Requests are appended to `request_log` when given; `faults`
    misbehave as Supabase's gateway may; `max_rows` caps every read's answer (None: no cap,
    PostgREST's own default)."""
    # No prepared statements: a test may make a table again with another id type, and a
    # statement prepared for the old one would cast to it (PostgREST reloads its schema cache
    # on DDL; Supabase's event trigger tells it to).
    connection = psycopg.connect(database_url, autocommit=True, prepare_threshold=None)
    api = _Api(connection, jwt_secret, request_log, max_rows)
    api.faults = faults or GatewayFaults()
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

    do_HEAD = do_PATCH = do_POST = do_DELETE = do_PUT = do_GET  # PUT: 400 PGRST100

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
            body=_parsed(raw_body),
            raw_body=raw_body,
            target=self.path,
        )
        status, headers, body = self.api.handle(request)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _parsed(raw_body: bytes) -> object:
    try:
        return json.loads(raw_body) if raw_body else None
    except ValueError:  # a write answers 400 PGRST102
        return None


class _Api:
    def __init__(
        self,
        connection: psycopg.Connection,
        jwt_secret: str,
        request_log: list[RecordedRequest] | None,
        max_rows: int | None,
    ) -> None:
        self.connection = connection
        self._jwt_secret = jwt_secret
        self._request_log = request_log
        self._max_rows = max_rows
        self._lock = threading.Lock()  # one connection, one request at a time

    faults: GatewayFaults

    def handle(self, request: RecordedRequest) -> tuple[int, dict[str, str], bytes]:
        if self._request_log is not None:
            self._request_log.append(request)
        fault = self.faults.draw()
        if fault == "503":
            return (
                503,
                {"Content-Type": "application/json"},
                b'{"message":"upstream connect error"}',
            )
        if fault == "429":
            headers = {
                "Content-Type": "application/json",
                "Retry-After": str(self.faults.retry_after_s),
            }
            return 429, headers, b'{"message":"API rate limit exceeded"}'
        if fault == "stall":
            time.sleep(self.faults.stall_s)
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
            action = {
                "GET": self._select,
                "HEAD": self._select,
                "POST": self._insert,
                "PATCH": self._update,
                "DELETE": self._delete,
            }.get(request.method)
            if action is None:
                raise _unsupported(f"{request.method} on a table")
            schema = request.headers.get("accept-profile" if read else "content-profile", "public")
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
            _limit(params.get("limit"), self._max_rows),
        )
        rows, shown = self.connection.execute(
            sql.SQL("select coalesce(json_agg(r), '[]')::text, count(*) from ({}) r").format(query),
            values,
        ).fetchone()
        if _prefer(request.headers).get("count") != "exact":
            return 200, {"Content-Range": f"{_range(shown)}/*"}, rows
        total = self.connection.execute(
            sql.SQL("select count(*) from {} as {}{}").format(target, sql.Identifier(table), where),
            values,
        ).fetchone()[0]
        status = 206 if shown < total else 200  # a part of the rows counted: Partial Content
        return status, {"Content-Range": f"{_range(shown)}/{total}"}, rows

    def _insert(self, schema: str, table: str, request: RecordedRequest):
        columns = self._require_table(schema, table)
        for name, value in request.query:
            if name not in _INSERT_PARAMETERS:
                raise _unsupported(f"the query parameter {name}={value} on POST")
        content_type = request.headers.get("content-type", "application/json")
        if content_type.partition(";")[0].strip().lower() != "application/json":
            raise _unsupported(f"a POST body of type {content_type}")
        params = dict(request.query)
        prefer = _prefer(request.headers)
        payload = request.raw_body.decode()
        if "columns" in params:  # PostgREST hands the body to PostgreSQL unread
            names = _column_names("columns", params["columns"])
            is_object = payload.lstrip(" \t\n\r").startswith("{")
        else:
            names, is_object, payload = _payload_keys(request)
        for name in names:
            if name not in columns:
                raise _column_not_found(table, name)
        resolution = prefer.get("resolution")
        if resolution not in ("merge-duplicates", "ignore-duplicates"):
            resolution = None
        conflict = (
            _column_names("on_conflict", params["on_conflict"])
            if "on_conflict" in params
            else self._primary_key(schema, table)
        )
        merge = resolution == "merge-duplicates"
        source, values = _insert_source(
            names, columns, payload, is_object, defaults=prefer.get("missing") == "default"
        )
        insert = sql.SQL("insert into {} as {} {}{}").format(
            sql.Identifier(schema, table),
            sql.Identifier(table),
            sql.SQL("({}) ").format(sql.SQL(", ").join(map(sql.Identifier, names)))
            if names
            else sql.SQL(""),
            source,
        )
        if merge:
            insert += sql.SQL(" where ") + _COUNT_INSERTED.format(sql.SQL("+"), "0")
        if resolution and conflict:  # without a primary key nor on_conflict: a plain insert
            insert += sql.SQL(" on conflict ({}) ").format(
                sql.SQL(", ").join(map(sql.Identifier, conflict))
            )
            if merge and names:
                insert += sql.SQL("do update set {} where {}").format(
                    sql.SQL(", ").join(
                        sql.SQL("{} = excluded.{}").format(sql.Identifier(n), sql.Identifier(n))
                        for n in names
                    ),
                    _COUNT_INSERTED.format(sql.SQL("-"), "-1"),
                )
            else:
                insert += sql.SQL("do nothing")
        insert += sql.SQL(" returning ") + _returning(table, request)
        rows, count, inserted = self.connection.execute(
            sql.SQL(
                "with pgrst_source as ({}) select coalesce(json_agg(r), '[]')::text, count(*), "
                "nullif(current_setting('pgrst.inserted', true), '')::int from pgrst_source r"
            ).format(insert),
            values,
        ).fetchone()
        status = 200 if merge and not (inserted or 0) > 0 else 201
        return _written(status, request, rows, count)

    def _update(self, schema: str, table: str, request: RecordedRequest):
        columns = self._require_table(schema, table)
        if not isinstance(request.body, dict):
            raise _unsupported("a PATCH body that is not one JSON object")
        for column in request.body:
            if column not in columns:
                raise _column_not_found(table, column)
        where, values = _where(table, request.query, spoken=("select",))
        if where is _NO_WHERE:  # Supabase runs pg-safeupdate
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
            _returning(table, request),
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

    def _delete(self, schema: str, table: str, request: RecordedRequest):
        self._require_table(schema, table)
        where, values = _where(table, request.query, spoken=("select",))
        if where is _NO_WHERE:  # Supabase runs pg-safeupdate
            raise PostgrestError(400, "21000", "DELETE requires a WHERE clause")
        delete = sql.SQL("delete from {} as {}{} returning {}").format(
            sql.Identifier(schema, table), sql.Identifier(table), where, _returning(table, request)
        )
        rows, deleted = self.connection.execute(
            sql.SQL(
                "with pgrst_source as ({}) select coalesce(json_agg(r), '[]')::text, count(*) "
                "from pgrst_source r"
            ).format(delete),
            values,
        ).fetchone()
        representation = _prefer(request.headers).get("return") == "representation"
        return _written(200 if representation else 204, request, rows, deleted)

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

    def _require_table(self, schema: str, table: str) -> dict[str, _Column]:
        """The table's columns by name; 404 PGRST205 when there is no such table."""
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
            "select a.attname, format_type(a.atttypid, a.atttypmod), "
            "case when a.attgenerated = '' then pg_get_expr(d.adbin, d.adrelid) end "
            "from pg_attribute a left join pg_attrdef d "
            "on d.adrelid = a.attrelid and d.adnum = a.attnum "
            "where a.attrelid = %s and a.attnum > 0 and not a.attisdropped order by a.attnum",
            [oid],
        ).fetchall()
        return {name: _Column(type_, default) for name, type_, default in rows}

    def _primary_key(self, schema: str, table: str) -> list[str]:
        rows = self.connection.execute(
            "select a.attname from pg_index i join pg_attribute a "
            "on a.attrelid = i.indrelid and a.attnum = any(i.indkey) "
            "where i.indrelid = to_regclass(format('%%I.%%I', %s::text, %s::text)) "
            "and i.indisprimary order by array_position(i.indkey::int2[], a.attnum)",
            [schema, table],
        ).fetchall()
        return [row[0] for row in rows]


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


_NO_WHERE = sql.SQL("")


def _where(
    table: str, query: list[tuple[str, str]], spoken: tuple[str, ...] = _RESERVED
) -> tuple[sql.Composable, list[str]]:
    """`column=[not.]op.value` filters (op also `is`: null, true, false, and `in`: a list)
    and `or=(...)` logic trees, the other query parameters `spoken` skipped; the value is an
    untyped literal PostgreSQL casts to the column's type, as PostgREST does (an unknown
    column fails in PostgreSQL: 42703). `_NO_WHERE` without a filter."""
    conditions, values = [], []
    for column, filter_ in query:
        if column in spoken:
            continue
        if column == "or" and filter_.startswith("("):
            conditions.append(_logic_tree(table, f"or{filter_}", values))
        else:
            conditions.append(_filter(table, column, filter_, values))
    if not conditions:
        return _NO_WHERE, []
    return sql.SQL(" where ") + sql.SQL(" and ").join(conditions), values


def _filter(table: str, column: str, filter_: str, values: list[str]) -> sql.Composable:
    negated = filter_.startswith("not.")
    operator, _, value = filter_.removeprefix("not.").partition(".")
    is_value = {"null": "null", "true": "true", "false": "false"}.get(value)
    if (
        column in _NOT_FILTERS
        or not _NAME.match(column)
        or (operator not in (*_OPERATORS, "in") and not (operator == "is" and is_value))
    ):
        raise _unsupported(f"the query parameter {column}={filter_}")
    reference = sql.Identifier(table, column)
    if operator == "is":
        condition = sql.SQL("{} is {}").format(reference, sql.SQL(is_value))
    elif operator == "in":  # PostgREST's `= ANY('{...}')`: an empty list matches nothing
        listed = _in_values(value)
        if listed is None:
            raise PostgrestError(400, "PGRST100", f'"failed to parse filter ({filter_})"')
        condition = sql.SQL("{} = any(%s)").format(reference)
        values.append(_array_literal(listed))
    else:
        condition = sql.SQL("{} {} %s").format(reference, sql.SQL(_OPERATORS[operator]))
        values.append(value)
    return sql.SQL("not ({})").format(condition) if negated else condition


_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"', re.DOTALL)
_LIST_OPENING = re.compile(r"[ \t]*\([ \t]*")
_LIST_CLOSING = re.compile(r"\)[ \t]*\Z")


def _in_values(text: str) -> list[str] | None:
    """The values of an `in` list as PostgREST parses it: `(` and `)` (blanks around them
    ignored) around values separated by commas, each either double-quoted (backslash
    escapes any character; the closing quote must be followed by `,` or `)`) or everything
    up to the next `,` or `)`, blanks and quotes included; None when it does not parse
    (PostgREST ignores what follows the `)`; the look-alike refuses it)."""
    opening = _LIST_OPENING.match(text)
    if not opening:
        return None
    position, listed = opening.end(), []
    while True:
        quoted = _QUOTED.match(text, position)
        if quoted and text[quoted.end() : quoted.end() + 1] in ("", ",", ")"):
            listed.append(re.sub(r"\\(.)", r"\1", quoted[1], flags=re.DOTALL))
            position = quoted.end()
        else:
            end = position
            while end < len(text) and text[end] not in ",)":
                end += 1
            listed.append(text[position:end])
            position = end
        if not text.startswith(",", position):
            break
        position += 1
    if not _LIST_CLOSING.match(text, position):
        return None
    return [value.replace("\0", "") for value in listed]


def _array_literal(listed: list[str]) -> str:
    """PostgreSQL's array literal of the values, every one quoted, as PostgREST builds it;
    `in.()` and `in.("")` are the empty array."""
    if listed == [""]:
        return "{}"
    quoted = (value.replace("\\", "\\\\").replace('"', '\\"') for value in listed)
    return "{" + ",".join(f'"{value}"' for value in quoted) + "}"


# A logic tree: `or(` / `and(`, then filters `column.op.value` (the value bare, or double-quoted
# with backslash escapes; `column.[not.]in.(...)` with a list) and nested trees, separated by
# commas, then `)`.
_LIST_ITEM = r'(?:"(?:[^"\\]|\\.)*"|[^,)])*'
_TREE_TOKEN = re.compile(
    r"(?P<tree>and|or)\(|\)|,"
    r"|(?P<in_column>\w+)\.(?P<in>(?:not\.)?in)\."
    rf"(?P<list>[ \t]*\({_LIST_ITEM}(?:,{_LIST_ITEM})*\)[ \t]*)"
    r'|(?P<column>\w+)\.(?P<operator>\w+)\.(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<bare>[^,()"]*))',
    re.DOTALL,
)


def _logic_tree(table: str, text: str, values: list[str]) -> sql.Composable:
    tokens = list(_TREE_TOKEN.finditer(text))
    if "".join(token[0] for token in tokens) != text:
        raise _unsupported(f"the logic tree {text!r}")
    stack: list[tuple[str, list[sql.Composable]]] = []
    for token in tokens:
        if token["tree"]:
            stack.append((token["tree"], []))
        elif token[0] == ")" and stack:
            operator, terms = stack.pop()
            tree = sql.SQL("({})").format(sql.SQL(f" {operator} ").join(terms))
            if not stack:
                return tree
            stack[-1][1].append(tree)
        elif token["in_column"] and stack:
            filter_ = f"{token['in']}.{token['list']}"
            stack[-1][1].append(_filter(table, token["in_column"], filter_, values))
        elif token["column"] and stack:
            quoted = token["quoted"] is not None
            value = re.sub(r"\\(.)", r"\1", token["quoted"]) if quoted else token["bare"]
            filter_ = f"{token['operator']}.{value}"
            stack[-1][1].append(_filter(table, token["column"], filter_, values))
        elif token[0] != "," or not stack:
            break
    raise _unsupported(f"the logic tree {text!r}")


class _Column(NamedTuple):
    type: str  # as format_type() writes it
    default: str | None  # the default's SQL expression


# A `columns` or `on_conflict` item: a double-quoted name (backslash escapes) or a bare one.
_COLUMN_ITEM = re.compile(r'[ \t]*(?:"((?:[^"\\]|\\.)*)"|([\w $-]+))[ \t]*(,|\Z)', re.DOTALL)


def _column_names(parameter: str, text: str) -> list[str]:
    """The names of a `columns` or `on_conflict` parameter, as PostgREST parses them."""
    names, position = [], 0
    while match := _COLUMN_ITEM.match(text, position):
        quoted, bare, separator = match.groups()
        names.append(re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare.strip())
        if not separator:
            return list(dict.fromkeys(names))
        position = match.end()
    raise PostgrestError(400, "PGRST100", f'"failed to parse {parameter} parameter ({text})"')


def _payload_keys(request: RecordedRequest) -> tuple[list[str], bool, str]:
    """What PostgREST reads of a POST body without `columns`: (its keys, whether it is one
    object, the body to insert). An array's objects must have the same keys; a body that
    is neither an object nor an array of objects inserts nothing."""
    body = request.body
    if body is None and request.raw_body.strip() != b"null":
        raise PostgrestError(400, "PGRST102", "Empty or invalid json")
    if isinstance(body, dict):
        return list(body), True, request.raw_body.decode()
    if isinstance(body, list) and body:
        keys = body[0].keys() if isinstance(body[0], dict) else None
        if keys is None or any(not isinstance(row, dict) or row.keys() != keys for row in body):
            raise PostgrestError(400, "PGRST102", "All object keys must match")
        return list(keys), False, request.raw_body.decode()
    return [], False, "[]"


def _insert_source(
    names: list[str], columns: dict[str, _Column], payload: str, is_object: bool, defaults: bool
) -> tuple[sql.Composable, list[str]]:
    """The SELECT of the INSERT, as PostgREST writes it: the body's rows through
    json_to_record(set) typed as the columns (missing keys are null), or with
    `defaults` (`Prefer: missing=default`) over the columns' defaults; without columns
    (`{}`, `[{}, {}]`) a row of defaults for each object."""
    if not names:
        if is_object:
            return sql.SQL("select from (values (1)) pgrst_body"), []
        return sql.SQL("select from json_array_elements(%s::json) pgrst_body"), [payload]
    if defaults:
        given = sql.SQL("jsonb_build_object({})").format(
            sql.SQL(", ").join(
                sql.SQL("{}, {}").format(sql.Literal(name), sql.SQL(columns[name].default))
                for name in names
                if columns[name].default is not None
            )
        )
        function = "jsonb_to_record" if is_object else "jsonb_to_recordset"
        body = (
            sql.SQL("({} || %s::jsonb)").format(given)
            if is_object
            else sql.SQL(
                "(select jsonb_agg({} || element) from jsonb_array_elements(%s::jsonb) element)"
            ).format(given)
        )
    else:
        function = "json_to_record" if is_object else "json_to_recordset"
        body = sql.SQL("%s::json")
    return sql.SQL("select {} from {}({}) as pgrst_body({})").format(
        sql.SQL(", ").join(sql.Identifier("pgrst_body", name) for name in names),
        sql.Identifier(function),
        body,
        sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(columns[name].type))
            for name in names
        ),
    ), [payload]


def _returning(table: str, request: RecordedRequest) -> sql.Composable:
    """A write's RETURNING: the `select` list for `Prefer: return=representation`, else
    `1` (as PostgREST: `select` is ignored and no SELECT grant is needed)."""
    if _prefer(request.headers).get("return") == "representation":
        return _select_list(table, dict(request.query).get("select", "*"))
    return sql.SQL("1")


def _written(
    status: int, request: RecordedRequest, rows: str, count: int
) -> tuple[int, dict[str, str], str]:
    """An insert's or a delete's answer: the rows for `Prefer: return=representation`."""
    prefer = _prefer(request.headers)
    headers = {"Content-Range": f"*/{count if prefer.get('count') == 'exact' else '*'}"}
    return status, headers, rows if prefer.get("return") == "representation" else ""


def _column_not_found(table: str, column: str) -> PostgrestError:
    return PostgrestError(
        400, "PGRST204", f"Could not find the '{column}' column of '{table}' in the schema cache"
    )


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


def _limit(limit: str | None, max_rows: int | None) -> sql.Composable:
    """The read's LIMIT: the one asked for, capped at `max_rows` (PostgREST's db-max-rows)."""
    if limit is not None and not limit.isdigit():
        raise _unsupported(f"the limit {limit!r}")
    limits = [int(limit)] if limit is not None else []
    if max_rows is not None:
        limits.append(max_rows)
    return sql.SQL(" limit {}").format(sql.Literal(min(limits))) if limits else sql.SQL("")


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
