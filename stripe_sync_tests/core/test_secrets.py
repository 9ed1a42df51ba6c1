import logging

from stripe_sync.core.secrets import RedactingFilter, redact


def test_stripe_keys_and_jwts_are_redacted():
    text = "key sk_test_abc123XYZ and rk_live_q1w2 and masked sk_test_****abcd and eyJhbGc.eyJyb2xl.c2ln"
    assert redact(text) == "key [redacted] and [redacted] and masked [redacted] and [redacted]"


def test_the_logging_filter_redacts_formatted_messages():
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "using %s", ("sk_test_secret123",), None
    )
    RedactingFilter().filter(record)
    assert record.getMessage() == "using [redacted]"


def test_supabase_keys_and_given_secrets_are_redacted_too():
    text = "bad key eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.sig or sb_secret_AbC123_xyz, and hunter2"
    assert redact(text, "hunter2") == "bad key [redacted] or [redacted], and [redacted]"
