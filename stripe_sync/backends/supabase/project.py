"""One Supabase project reached through its REST API (PostgREST) with supabase-py: the
connection its catalog and its state share.

Every request goes through `SupabaseProject.execute`: one request, its failures classified
in one place (`_api_error`) and retried by the catalog's policy; postgrest-py's own retries
are off, so one policy retries.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading

import httpx
from postgrest import APIError
from postgrest.constants import DEFAULT_POSTGREST_CLIENT_HEADERS
from supabase import ClientOptions, SupabaseException, create_client

from stripe_sync.backends.missing_columns import MIGRATION
from stripe_sync.core.database_errors import RETRYABLE_SQLSTATES
from stripe_sync.core.errors import (
    CatalogError,
    CatalogFailure,
    ErrorKind,
    retry_after_seconds,
)
from stripe_sync.core.retry import (
    CALL_TIMEOUT_S,
    NO_RETRY,
    RetryPolicy,
    RetryStats,
    call_with_retries,
)
from stripe_sync.core.secrets import redact

_FUNCTION_MISSING = "PGRST202"
_TABLE_MISSING = ("PGRST205", "42P01")
_COLUMN_MISSING = "42703"
_RETRYABLE_STATUSES = {408, 500, 502, 503, 504}
# PostgREST's own connection errors, and PostgreSQL's failover, timeout and concurrency codes.
_RETRYABLE_CODES = {"PGRST000", "PGRST001", "PGRST002", *RETRYABLE_SQLSTATES}


class FunctionMissing(CatalogError):
    """PostgREST has no such function (PGRST202)."""


class ColumnMissing(CatalogError):
    """PostgREST does not know a selected column (42703)."""


class SupabaseProject:
    """A Supabase project reached with its service_role key: `table` and `rpc` build
    requests, `execute` sends one; `location` says where it is, never the key."""

    def __init__(
        self,
        url: str,
        service_role_key: str,
        *,
        timeout_s: float = CALL_TIMEOUT_S,
        retry: RetryPolicy = NO_RETRY,
        stats: RetryStats | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.location = f"Supabase {self.url}"
        self._retry = retry
        self._stats = stats if stats is not None else RetryStats()
        self._key = service_role_key
        self._timeout_s = timeout_s
        self._last = threading.local()  # the status and headers of this thread's last answer
        # Our own HTTP client (with PostgREST's default headers): supabase-py otherwise
        # hands the PostgREST client deprecated options, a warning on every catalog.
        self._http = httpx.Client(
            headers=DEFAULT_POSTGREST_CLIENT_HEADERS,
            timeout=timeout_s,
            event_hooks={"response": [self._remember]},
        )
        try:
            self._client = create_client(
                self.url,
                service_role_key,
                options=ClientOptions(
                    auto_refresh_token=False, persist_session=False, httpx_client=self._http
                ),
            )
        except SupabaseException as error:  # supabase-py's own checks: a malformed URL
            raise CatalogError(
                f"Cannot use SUPABASE_URL {self.url}: {redact(str(error), self._key)}"
            ) from None

    def __repr__(self) -> str:
        return f"SupabaseProject({self.url!r})"

    def check_key(self) -> None:
        """A CatalogError when the key is a JWT of another role than service_role."""
        role = _jwt_role(self._key)
        if role not in (None, "service_role"):
            raise CatalogError(
                f"SUPABASE_SERVICE_ROLE_KEY holds a key with role {role!r}: set it to the "
                "project's service_role key (Project Settings > API)."
            )

    def table(self, name: str):
        """supabase-py's request builder for the table or view `name`."""
        return self._client.table(name)

    def rpc(self, function: str, params: dict):
        """supabase-py's request calling the database function `function` with `params`."""
        return self._client.rpc(function, params)

    def execute(self, query, *, table: str):
        """Send `query` (built by `.table()` or `.rpc()`): one request, its failures
        classified and retried by the catalog's policy (a request PostgREST answered with an
        error changed nothing). `table`: the table an error names for a missing table or
        column."""
        return call_with_retries(
            lambda: self._attempt(query, table), self._retry, stats=self._stats
        )

    def close(self) -> None:
        self._http.close()

    def _attempt(self, query, table: str):
        self._last.status, self._last.retry_after = None, None
        try:
            # postgrest-py's own retries off: retrying is this class's (one policy, one place).
            return query.retry(False).execute()
        except httpx.TimeoutException:
            raise CatalogFailure(
                ErrorKind.RETRYABLE,
                f"Supabase at {self.url} did not answer within {self._timeout_s:g} s",
            ) from None
        except httpx.HTTPError as error:
            raise CatalogFailure(
                ErrorKind.RETRYABLE,
                f"Cannot reach Supabase at {self.url} ({redact(str(error), self._key)}): check "
                "SUPABASE_URL and that the project is up.",
            ) from None
        except APIError as error:
            raise self._api_error(error, table) from None

    def _remember(self, response: httpx.Response) -> None:
        self._last.status = response.status_code
        self._last.retry_after = response.headers.get("retry-after")

    def _api_error(self, error: APIError, table: str) -> Exception:
        """The one place that decides what a PostgREST error means."""
        code = error.code or ""
        message = redact(error.message or "", self._key)
        status = getattr(self._last, "status", None)
        if status == 429:
            return CatalogFailure(
                ErrorKind.RATE_LIMITED,
                f"Supabase at {self.url} is rate limiting the pipeline (429)",
                retry_after_s=retry_after_seconds(self._last.retry_after),
            )
        if status in _RETRYABLE_STATUSES or code in _RETRYABLE_CODES or code[:2] == "08":
            return CatalogFailure(
                ErrorKind.RETRYABLE,
                f"Supabase at {self.url} answered {status} {code} {message}".strip(),
                retry_after_s=retry_after_seconds(self._last.retry_after),
            )
        if code == _FUNCTION_MISSING:
            return FunctionMissing(message)
        if code == _COLUMN_MISSING:
            return ColumnMissing(f"Table {table} lacks a column ({message}): apply {MIGRATION}.")
        if code in _TABLE_MISSING:
            return CatalogError(
                f"Table {table} not found in Supabase at {self.url}: create it or set "
                "the table name."
            )
        if code == "42501" or code.startswith("PGRST3"):
            return CatalogError(
                f"Supabase refused the request ({code} {message}): set "
                "SUPABASE_SERVICE_ROLE_KEY to the project's service_role key."
            )
        return CatalogError(f"Supabase answered {code or 'an error'}: {message}")


def _jwt_role(key: str) -> str | None:
    """The `role` claim of a JWT key (unverified: only to name a wrong key), else None."""
    parts = key.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return None
    return claims.get("role") if isinstance(claims, dict) else None
