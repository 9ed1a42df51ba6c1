import dagster as dg

from stripe_sync.defs.resources import CatalogResource, StripeResource, env_var


def test_resource_reprs_never_show_keys_or_database_passwords(monkeypatch):
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_reprsecret123")
    monkeypatch.setenv(
        "SUPABASE_SERVICE_ROLE_KEY", "eyJhbGciOi.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl"
    )
    monkeypatch.setenv("CATALOG_DATABASE_URL", "postgresql://app:hunter2@db.example/catalog")
    resources = {
        "stripe": StripeResource(secret_key=env_var("STRIPE_SECRET_KEY")),
        "catalog": CatalogResource(
            database_url=env_var("CATALOG_DATABASE_URL"),
            supabase_service_role_key=env_var("SUPABASE_SERVICE_ROLE_KEY"),
        ),
    }
    with dg.build_resources(resources) as built:
        shown = " ".join(f"{r!r} {r}" for r in (built.stripe, built.catalog, built.stripe.api()))
    for secret in ("reprsecret123", "hunter2", "c2lnbmF0dXJl"):
        assert secret not in shown


def test_keys_are_wired_as_env_vars_so_dagster_stores_only_their_names(monkeypatch):
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_x")
    monkeypatch.delenv("SUPABASE_URL", raising=False)
    monkeypatch.setenv("VITE_SUPABASE_URL", "https://x.supabase.co")
    assert env_var("STRIPE_SECRET_KEY") == dg.EnvVar("STRIPE_SECRET_KEY")
    assert env_var("SUPABASE_URL", "VITE_SUPABASE_URL") == dg.EnvVar("VITE_SUPABASE_URL")
    monkeypatch.delenv("VITE_SUPABASE_URL")
    assert env_var("SUPABASE_URL", "VITE_SUPABASE_URL") == ""
