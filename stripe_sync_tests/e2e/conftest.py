"""Fixtures only the end-to-end scenarios use (the shared ones are in ../conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stripe_sync_tests.support.postgrest import GatewayFaults


@pytest.fixture
def gateway_faults(postgrest_faults: GatewayFaults) -> Iterator[GatewayFaults]:
    """The look-alike's gateway faults, for this test (off again after it)."""
    yield postgrest_faults
    postgrest_faults.off()


@pytest.fixture
def schema_cms(own_schema, tmp_path, pipeline_env):
    """`make(backend, schema, use_query=False, mirror=False) -> Cms`: an `OwnSchema`'s
    tables with their first rows (see `own_schema`), the pipeline pointed at them by
    stripe_sync.yaml in the working directory."""
    import yaml

    def make(backend: str, schema, *, use_query: bool = False, mirror: bool = False):
        cms = own_schema(backend, schema)
        if cms.supabase is not None:
            url, key = cms.supabase
            pipeline_env.set(SUPABASE_URL=url, SUPABASE_SERVICE_ROLE_KEY=key)
        else:
            pipeline_env.set(CATALOG_DATABASE_URL=cms.database_url)
        settings = schema.settings(cms.name, supabase=backend == "supabase", use_query=use_query)
        if mirror:
            settings["sync"] = {"mirror": True}
        (tmp_path / "stripe_sync.yaml").write_text(yaml.safe_dump(settings))
        return cms

    return make
