"""Errors, classified once: what a user must fix, and what a Stripe call's failure means.

A fatal Stripe error (bad key, missing permission) stops the run; bad data fails the row;
retryable and rate-limited errors are for the retry layer (retry.py). Messages are
redacted: Stripe's own 401 message names the key (masked), and nothing key-like may
reach a log or the catalog.
"""

import enum
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
    FATAL = "fatal"  # authentication or permission: nothing else will work either
    RATE_LIMITED = "rate_limited"
    RETRYABLE = "retryable"  # dropped connection, timeout, 409, 5xx
    BAD_DATA = "bad_data"  # Stripe refused this row's request


@dataclass
class StripeFailure(Exception):
    """A Stripe call that failed, classified, with a key-free message."""

    kind: ErrorKind
    message: str
    code: str | None = None
    status: int | None = None
    should_retry: bool | None = None  # Stripe-Should-Retry, when Stripe sent it
    retry_after_s: float | None = None  # Retry-After, when Stripe sent it

    def __str__(self) -> str:
        return self.message

    @property
    def retryable(self) -> bool:
        """Stripe's own word first; else 429, 409, 5xx and connection problems, never other 4xx."""
        if self.should_retry is not None:
            return self.should_retry
        return self.kind in (ErrorKind.RATE_LIMITED, ErrorKind.RETRYABLE)


def classify(error: stripe.StripeError) -> StripeFailure:
    """The one place that decides what a stripe-python error means."""
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
    message = body.get("message") or error.user_message or type(error).__name__
    headers = {name.lower(): value for name, value in (error.headers or {}).items()}
    should_retry = headers.get("stripe-should-retry")
    retry_after = headers.get("retry-after", "")
    return StripeFailure(
        kind,
        redact(str(message)),
        code=body.get("code") or error.code,
        status=status,
        should_retry=None if should_retry is None else should_retry == "true",
        retry_after_s=float(retry_after) if retry_after.replace(".", "", 1).isdigit() else None,
    )
