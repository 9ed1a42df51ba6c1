"""stripe_sync: a Dagster project that moves a product catalog from Supabase/PostgreSQL
into Stripe Products and Prices, planning every change before applying it.

Subpackages: ``core`` (plain Python logic), ``testing`` (the shipped Stripe emulator);
``cli`` is the ``stripe-sync`` command.
"""
