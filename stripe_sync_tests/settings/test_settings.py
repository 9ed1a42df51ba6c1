"""The settings: one typed model, layered defaults < stripe_sync.yaml < environment and .env <
flags, with the source of each value, secrets only as references, and errors that name the key."""

from __future__ import annotations

import os
import pathlib
import re

import dagster as dg
import pytest
from click.testing import CliRunner

from stripe_sync.cli import main
from stripe_sync.core.errors import ConfigError
from stripe_sync.settings.loader import environment_for_child, load_settings
from stripe_sync.settings.model import Secret, setting_fields, variables_of

KEY = "sk_test_settings_layers_0123456789"
ROOT = pathlib.Path(__file__).parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"


def load(tmp_path: pathlib.Path, yaml: str | None = None, environ=None, dotenv=None, **overrides):
    if yaml is not None:
        (tmp_path / "stripe_sync.yaml").write_text(yaml)
    if dotenv is not None:
        (tmp_path / ".env").write_text(dotenv)
    return load_settings(environ=environ or {}, cwd=tmp_path, overrides=overrides)


def test_defaults_need_no_file_and_no_environment(tmp_path):
    settings = load(tmp_path)

    assert settings.sync.batch_size == 1000
    assert settings.catalog.table == "products"
    assert settings.source("sync.batch_size") == "default"


def test_each_layer_wins_over_the_one_before(tmp_path):
    yaml = "sync:\n  batch_size: 20\ncatalog:\n  table: from_file\nstripe:\n  timeout_s: 7\n"
    dotenv = "STRIPE_SYNC_BATCH_SIZE=30\nCATALOG_TABLE=from_dotenv\n"
    environ = {"STRIPE_SYNC_BATCH_SIZE": "40"}

    settings = load(tmp_path, yaml, environ, dotenv, **{"sync.batch_size": 50})

    assert settings.stripe.timeout_s == 7 and settings.source("stripe.timeout_s") == (
        "stripe_sync.yaml"
    )
    assert settings.catalog.table == "from_dotenv"
    assert settings.source("catalog.table") == ".env CATALOG_TABLE"
    assert settings.sync.batch_size == 50
    assert settings.source("sync.batch_size") == "flag --batch-size"
    assert load(tmp_path, environ=environ).source("sync.batch_size") == "env STRIPE_SYNC_BATCH_SIZE"


@pytest.mark.parametrize(
    ("variable", "key"),
    [
        ("VITE_SUPABASE_URL", "catalog.supabase_url"),
        ("SUPABASE_URL", "catalog.supabase_url"),
        ("SUPABASE_SERVICE_ROLE_KEY", "catalog.supabase_service_role_key"),
        ("STRIPE_SECRET_KEY", "stripe.secret_key"),
    ],
)
def test_the_original_tools_variable_names_keep_working(tmp_path, variable, key):
    value = "https://abc.supabase.co" if key.endswith("url") else "secret-0123456789"
    settings = load(tmp_path, environ={variable: value})

    section, name = key.split(".")
    found = getattr(getattr(settings, section), name)
    assert getattr(found, "value", found) == value
    assert settings.source(key) == f"env {variable}"


@pytest.mark.parametrize("reference", ["${STRIPE_SECRET_KEY}", "{env: STRIPE_SECRET_KEY}"])
def test_a_secret_in_the_file_is_a_reference_resolved_from_the_environment(tmp_path, reference):
    settings = load(
        tmp_path, f"stripe:\n  secret_key: {reference}\n", environ={"STRIPE_SECRET_KEY": KEY}
    )

    assert settings.stripe.secret_key.value == KEY
    assert settings.stripe.secret_key.variable == "STRIPE_SECRET_KEY"
    assert KEY not in repr(settings) and KEY not in str(settings.rows())


@pytest.mark.parametrize(
    ("yaml", "named"),
    [
        (f"stripe:\n  secret_key: {KEY}\n", "stripe.secret_key"),
        ("catalog:\n  database_url: postgresql://u:hunter2@db/x\n", "catalog.database_url"),
    ],
)
def test_a_literal_secret_in_the_file_is_refused_without_echoing_it(tmp_path, yaml, named):
    with pytest.raises(ConfigError) as refused:
        load(tmp_path, yaml)

    message = str(refused.value)
    assert named in message and "reference to an environment variable" in message
    assert KEY not in message and "hunter2" not in message


def test_a_database_url_without_a_password_may_be_literal(tmp_path):
    settings = load(tmp_path, "catalog:\n  database_url: sqlite:///catalog.db\n")

    assert settings.catalog.database_url.value == "sqlite:///catalog.db"


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        (
            "sync:\n  batch_sise: 10\n",
            "sync.batch_sise is not a setting (did you mean sync.batch_size?)",
        ),
        (
            "synk:\n  batch_size: 10\n",
            "synk.batch_size is not a setting (did you mean sync.batch_size?)",
        ),
        ("synk: 10\n", "synk must be a section of settings such as catalog, prices, state, stripe"),
        (
            "sync:\n  batch_size: ten\n",
            "sync.batch_size in stripe_sync.yaml must be a whole number of at least 1, not 'ten'.",
        ),
        (
            "stripe:\n  allow_live_mode: maybe\n",
            "stripe.allow_live_mode in stripe_sync.yaml must be true or false, not 'maybe'.",
        ),
        ("sync: [\n", "stripe_sync.yaml is not valid YAML at line 2: fix its syntax."),
        (
            "catalog:\n  columns: {sku: id}\n",
            "catalog.columns maps 'sku', which is not a field: use id, name, description",
        ),
        (
            "catalog:\n  columns: {name: null}\n",
            "catalog.columns: the field name needs a column.",
        ),
        (
            "catalog:\n  price_unit: cents\n",
            "catalog.price_unit in stripe_sync.yaml must be major or minor, not 'cents'.",
        ),
        (
            "catalog:\n  currency: eur\n  columns: {currency: currency_code}\n",
            "catalog.currency and catalog.columns.currency are both set",
        ),
        ("catalog:\n  currency: euro\n", "catalog.currency must be a currency Stripe supports"),
        ("catalog:\n  skip: status\n", "catalog.skip needs values"),
        (
            "catalog:\n  metadata: {cms_id: sku}\n",
            "catalog.metadata uses the key 'cms_id', which the pipeline owns",
        ),
        (
            "prices:\n  table: p\n  columns: {amount_cents: a}\n",
            "prices.columns maps 'amount_cents'",
        ),
        ("prices:\n  table: p\n  query: select 1\n", "prices.table and prices.query are both set"),
        ("prices:\n  columns: {amount: a}\n", "prices.columns or prices.where is set without"),
        (
            "prices:\n  table: p\n  columns: {amount: null}\n",
            "prices.columns: the field amount needs a column",
        ),
        ("prices:\n  table: p\n  price_unit: cents\n", "prices.price_unit"),
        (
            "prices:\n  table: p\ncatalog:\n  columns: {price: price_cents}\n",
            "the field price of a row is unused: the prices come from the prices table",
        ),
    ],
)
def test_a_bad_project_file_fails_at_load_naming_the_key_and_what_was_expected(
    tmp_path, yaml, message
):
    with pytest.raises(ConfigError) as refused:
        load(tmp_path, yaml)

    assert message in str(refused.value)


def test_a_bad_variable_is_named_as_the_variable(tmp_path):
    with pytest.raises(ConfigError, match=r"^STRIPE_SYNC_BATCH_SIZE must be a whole number"):
        load(tmp_path, environ={"STRIPE_SYNC_BATCH_SIZE": "0"})


def test_the_config_file_may_be_named_by_variable_and_a_missing_one_is_refused(tmp_path):
    (tmp_path / "other.yaml").write_text("sync:\n  batch_size: 7\n")

    named = load(tmp_path, environ={"STRIPE_SYNC_CONFIG": "other.yaml"})

    assert named.sync.batch_size == 7 and named.source("sync.batch_size") == "other.yaml"
    with pytest.raises(ConfigError, match="missing.yaml does not exist: fix --config"):
        load_settings(config_file="missing.yaml", environ={}, cwd=tmp_path)


def test_stripe_sync_config_prints_every_setting_with_its_source_and_secrets_masked(
    pipeline_env, tmp_path
):
    (tmp_path / "stripe_sync.yaml").write_text("sync:\n  batch_size: 25\n")
    pipeline_env.set(CATALOG_DATABASE_URL="postgresql://sync:hunter2@db.example/cms")

    result = CliRunner().invoke(main, ["config"], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    rows = {
        cells[0]: cells[1:]
        for line in result.output.splitlines()
        if len(cells := [cell.strip() for cell in line.strip("|").split("|")]) == 3
    }
    assert rows["sync.batch_size"] == ["25", "stripe_sync.yaml"]
    assert rows["stripe.secret_key"] == ["[set from STRIPE_SECRET_KEY]", "env STRIPE_SECRET_KEY"]
    assert rows["catalog.database_url"][0] == "postgresql://sync:***@db.example/cms"
    assert rows["catalog.table"] == ["products", "default"]
    assert {key for key, _info in setting_fields()} <= set(rows)
    assert "hunter2" not in result.output and "sk_test_stripe_sync" not in result.output


def test_a_flag_of_one_command_does_not_leak_into_the_next(pipeline_env):
    # pandera sets SPARK_LOCAL_IP and PYARROW_IGNORE_TIMEZONE when first imported: imported
    # here, so the comparison sees only what the command did (a fresh worker runs this first).
    import pandera.pandas  # noqa: F401

    before = dict(os.environ)
    runner = CliRunner()

    runner.invoke(main, ["migrate", "--batch-size", "3", "--mirror", "--allow-live-mode"])
    after = runner.invoke(main, ["config"], catch_exceptions=False)

    assert dict(os.environ) == before
    assert "| sync.batch_size | 1000 | default |" in after.output
    assert "| sync.mirror | False | default |" in after.output
    assert "| stripe.allow_live_mode | False | default |" in after.output


def test_the_configuration_page_documents_every_setting_with_its_variables():
    page = CONFIGURATION.read_text()

    for key, info in setting_fields():
        row = next((line for line in page.splitlines() if line.startswith(f"| `{key}`")), None)
        assert row is not None, f"docs/configuration.md's settings table lacks {key}"
        for variable in variables_of(info):
            assert f"`{variable}`" in row, f"docs/configuration.md's row of {key} lacks {variable}"


def test_the_readme_is_short_and_links_every_docs_page():
    readme = README.read_text()

    assert len(readme.splitlines()) <= 300
    pages = sorted(DOCS.glob("*.md"))
    assert pages
    for page in pages:
        assert f"](docs/{page.name})" in readme, f"README.md does not link docs/{page.name}"


def test_the_readme_quick_start_has_the_commands_ci_and_the_demo_run():
    quick_start = README.read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]

    assert re.search(r"^scripts/demo --ui\b", quick_start, re.MULTILINE)
    assert re.search(r"^scripts/test\b", quick_start, re.MULTILINE)
    assert "exec bash scripts/test" in (ROOT / ".ci" / "run").read_text()


def _anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a page's headings (outside code blocks)."""
    anchors, fenced = set(), False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (heading := re.match(r"#{1,6} (.+)", line)):
            anchors.add(re.sub(r"[^\w\- ]", "", heading[1].strip().lower()).replace(" ", "-"))
    return anchors


def test_the_readme_and_docs_links_lead_somewhere():
    for source in [README, *sorted(DOCS.glob("*.md"))]:
        text = source.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (source.parent / path).resolve() if path else source
            assert linked.exists(), f"{source.name} links {target}: no such file"
            if anchor and linked.suffix == ".md":
                assert anchor in _anchors(linked.read_text()), (
                    f"{source.name} links {target}: no such heading"
                )


def test_a_mapping_may_come_from_variables_as_json_and_rules_as_a_column_alone(tmp_path):
    settings = load(
        tmp_path,
        "catalog:\n  active: is_published\n  deleted: deleted_at\n",
        environ={
            "STRIPE_SYNC_CATALOG_COLUMNS": '{"id": "sku", "images": null}',
            "STRIPE_SYNC_CATALOG_SKIP": '{"column": "status", "values": "draft"}',
            "STRIPE_SYNC_PRICE_UNIT": "Minor",
        },
    )

    mapping = settings.catalog.mapping()
    assert (mapping.column("id"), mapping.column("images"), mapping.column("name")) == (
        "sku",
        None,
        "name",
    )
    assert (mapping.active.column, mapping.active.values) == ("is_published", ())
    assert (mapping.skip.column, mapping.skip.values) == ("status", ("draft",))
    assert (mapping.deleted.column, mapping.price_unit) == ("deleted_at", "minor")
    assert settings.source("catalog.columns") == "env STRIPE_SYNC_CATALOG_COLUMNS"


def test_no_mapping_settings_is_the_projects_own_table(tmp_path):
    assert load(tmp_path).catalog.mapping().is_default


@pytest.mark.parametrize(
    ("yaml", "environ"),
    [
        ("assets:\n  owners: [team:payments, ana@example.com]\n", {}),
        ("assets:\n  owners: team:payments, ana@example.com\n", {}),
        (None, {"STRIPE_SYNC_ASSET_OWNERS": "team:payments, ana@example.com"}),
    ],
)
def test_asset_owners_are_a_list_in_the_file_or_comma_separated(tmp_path, yaml, environ):
    settings = load(tmp_path, yaml, environ)

    assert settings.assets.owners == ("team:payments", "ana@example.com")


def dagster_takes(owner: str) -> bool:
    try:
        dg.AssetSpec("products", owners=[owner])
    except dg.DagsterInvalidDefinitionError:
        return False
    return True


@pytest.mark.parametrize(
    "owner",
    [
        "ana@example.com",
        "ana.lopez+stripe@shop.example.co.uk",
        "team:payments",
        "team:Data Platform",
    ],
)
def test_an_owner_dagster_takes_is_taken(tmp_path, owner):
    assert dagster_takes(owner)

    assert load(tmp_path, environ={"STRIPE_SYNC_ASSET_OWNERS": owner}).assets.owners == (owner,)


@pytest.mark.parametrize(
    "owner", ["team:", "payments", "ana@example", "ana@@example.com", ".ana@example.com"]
)
def test_an_owner_dagster_refuses_is_refused_at_load_in_one_sentence_naming_the_key(
    tmp_path, owner
):
    assert not dagster_takes(owner)

    with pytest.raises(ConfigError) as refused:
        load(tmp_path, environ={"STRIPE_SYNC_ASSET_OWNERS": f"team:data, {owner}"})

    assert str(refused.value) == (
        f"assets.owners holds {owner!r}, which is not an owner Dagster takes: write an email "
        "(ana@example.com) or a team (team:data)."
    )


def test_a_child_process_gets_the_settings_one_source_made_as_their_variables(tmp_path):
    made_here = load_settings(environ={}, cwd=tmp_path).overridden(
        {
            "catalog.database_url": Secret("sqlite:///demo/catalog.db"),
            "stripe.secret_key": Secret("sk_test_demo"),
            "sync.batch_size": 50,
        },
        source="demo",
    )

    environment = environment_for_child(made_here, "demo")

    assert {name: environment[name] for name in ("CATALOG_DATABASE_URL", "STRIPE_SECRET_KEY")} == {
        "CATALOG_DATABASE_URL": "sqlite:///demo/catalog.db",
        "STRIPE_SECRET_KEY": "sk_test_demo",
    }
    assert environment["STRIPE_SYNC_BATCH_SIZE"] == "50"
    # a child reading them has the same settings
    assert load_settings(environ=environment, cwd=tmp_path).sync.batch_size == 50


def test_a_child_process_reads_the_project_file_a_config_flag_named(tmp_path):
    project_file = tmp_path / "elsewhere.yaml"
    project_file.write_text("sync:\n  batch_size: 7\n")
    settings = load_settings(config_file=project_file, environ={}, cwd=tmp_path)

    environment = environment_for_child(settings, "demo", project_file)

    assert load_settings(environ=environment, cwd=tmp_path).sync.batch_size == 7
