"""Keeping Stripe and Supabase keys out of logs, errors, reports and reprs."""

from __future__ import annotations

import logging
import re

# Stripe secret, restricted and publishable keys (also Stripe's own masked form
# `sk_test_****abcd`), JWTs such as Supabase's legacy anon and service_role keys, and
# Supabase's newer API keys.
_SECRET = re.compile(
    r"\b(?:sk|rk|pk)_(?:test|live)_[A-Za-z0-9*]+"
    r"|\beyJ[\w-]+\.[\w-]+\.[\w-]*"
    r"|\bsb_(?:secret|publishable)_[\w-]+"
)
REDACTED = "[redacted]"


def redact(text: str, *secrets: str | None) -> str:
    """`text` without the given secrets (a password, say) and without anything key-looking."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return _SECRET.sub(REDACTED, text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts keys from every record that passes through it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _SECRET.search(message):
            record.msg, record.args = redact(message), None
        return True
