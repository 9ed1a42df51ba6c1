"""Errors, classified once: what a user must fix, and what a failed call means.

A `Failure` is a Stripe call's or a catalog call's failure, classified into an `ErrorKind`:
a fatal error (bad key, missing permission, a missing table) stops the run; bad data fails
the row; retryable and rate-limited errors are for the retry layer (retry.py), the same for
Stripe and the catalog. Stripe's are classified here (`classify`), the catalog's where its
driver is known (`stripe_sync.backends`). Messages are redacted: Stripe's own 401 message names
the key (masked), and nothing key-like may reach a log or the catalog.
"""

import enum
import re
from dataclasses import dataclass

import stripe

from stripe_sync.core.secrets import redact


class ConfigError(Exception):
    """Missing or wrong configuration: one sentence saying what is wrong and what to set.

    Raised before any write; the CLI prints it without a traceback.
    """


class CatalogError(Exception):
    """A catalog configuration or connectivity problem, said in one sentence that names what
    to set or fix (no traceback for users, never a secret)."""


class ErrorKind(enum.Enum):
    FATAL = "fatal"  # authentication, permission, a missing table: nothing else will work
    RATE_LIMITED = "rate_limited"
    RETRYABLE = "retryable"  # dropped connection, failover, timeout, 409, 5xx
    BAD_DATA = "bad_data"  # Stripe refused this row's request


@dataclass
class Failure(Exception):
    """A call that failed, classified, with a key-free message."""

    kind: ErrorKind
    message: str
    retry_after_s: float | None = None  # Retry-After, when the server sent it

    def __str__(self) -> str:
        return self.message

    @property
    def retryable(self) -> bool:
        return self.kind in (ErrorKind.RATE_LIMITED, ErrorKind.RETRYABLE)


@dataclass
class StripeFailure(Failure):
    """A Stripe call that failed."""

    code: str | None = None
    status: int | None = None
    should_retry: bool | None = None  # Stripe-Should-Retry, when Stripe sent it

    @property
    def retryable(self) -> bool:
        """Stripe's own word first; else 429, 409, 5xx and connection problems, never other 4xx."""
        if self.should_retry is not None:
            return self.should_retry
        return super().retryable


@dataclass
class CatalogFailure(Failure, CatalogError):
    """A call to the catalog's or the state's database that failed: retryable (a dropped
    connection, a failover, a timeout, 408/429/5xx from PostgREST) or fatal (permission, a
    missing table or column, bad SQL; the message says what to fix)."""


def classify(error: stripe.StripeError, endpoint: str = "") -> StripeFailure:
    """The one place that decides what a stripe-python error means. `endpoint`: the request,
    e.g. "GET /v1/products", named in a message that is not Stripe's own answer to it."""
    status = error.http_status
    if isinstance(error, (stripe.AuthenticationError, stripe.PermissionError)):
        kind = ErrorKind.FATAL
    elif isinstance(error, stripe.RateLimitError) or status == 429:
        kind = ErrorKind.RATE_LIMITED
    elif isinstance(error, stripe.APIConnectionError) or (status or 0) >= 500 or status == 409:
        kind = ErrorKind.RETRYABLE
    else:
        kind = ErrorKind.BAD_DATA
    body = error.json_body.get("error", {}) if isinstance(error.json_body, dict) else {}
    message = shown_to_users(str(body.get("message") or error.user_message or type(error).__name__))
    if endpoint and not body.get("message"):
        message = f"{endpoint}: {message}"
    headers = {name.lower(): value for name, value in (error.headers or {}).items()}
    should_retry = headers.get("stripe-should-retry")
    retry_after = headers.get("retry-after", "")
    return StripeFailure(
        kind,
        redact(message),
        retry_after_s=retry_after_seconds(retry_after),
        code=body.get("code") or error.code,
        status=status,
        should_retry=None if should_retry is None else should_retry == "true",
    )


# stripe-python's "If this problem persists, let us know at support@stripe.com." and its kin.
_SUPPORT_SENTENCE = re.compile(r"\s*[^.]*support@stripe\.com[^.]*\.")
# A URL's or path's query string: the ids of a list request run to kilobytes.
_QUERY_STRING = re.compile(r"(/[^\s?'\"()]*)\?[^\s'\"()]+")


def shown_to_users(message: str) -> str:
    """A Stripe error's message on one line, without stripe-python's sentence asking to write
    to Stripe's support and without query strings (a path is kept)."""
    message = _SUPPORT_SENTENCE.sub("", " ".join(message.split()))
    return _QUERY_STRING.sub(r"\1", message).strip()


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header's seconds (its HTTP-date form is ignored: no server here sends it)."""
    value = (value or "").strip()
    return float(value) if value.replace(".", "", 1).isdigit() else None
