"""Everything Dagster: assets, checks, jobs, resources and partitions of stripe_sync."""
