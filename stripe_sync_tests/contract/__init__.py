"""Contract suite: the same assertions against the emulator and against real Stripe.

By default the tests run against the in-process emulator (``stripe_sync.emulator``).
Set ``STRIPE_CONTRACT_SECRET_KEY`` to a Stripe *test-mode* secret key
(``sk_test_...`` or ``rk_test_...``) to run them against real Stripe instead;
live keys are refused. Every object created in real mode carries
``metadata[contract_run]=<run tag>`` and is archived at the end of the session.
"""
