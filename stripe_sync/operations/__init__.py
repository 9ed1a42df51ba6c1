"""What the `stripe-sync` commands do, as functions with typed results: migrate, plan,
verify, rollback, reset, preflight and the demo. Each takes the `Settings` of its command
and runs the Dagster jobs of `stripe_sync.defs` in process, against the DAGSTER_HOME
instance, so every run shows in `dagster dev`."""
