"""The factory: the pipeline's objects, each built from the settings in one place."""

import pytest

from stripe_sync.factory import opened_stripe_api, throttle_store, validation_rules
from stripe_sync.settings.loader import load_settings


@pytest.mark.parametrize(
    ("variables", "throttle"),
    [
        ({}, ""),  # a SQLite file in the state dir: one machine
        ({"CATALOG_DATABASE_URL": "sqlite:///catalog.db"}, ""),
        ({"CATALOG_DATABASE_URL": "postgresql://cms@db/cms"}, "postgresql://cms@db/cms"),
        ({"STRIPE_SYNC_STATE_URL": "postgresql://state@db/state"}, "postgresql://state@db/state"),
        (
            {
                "CATALOG_DATABASE_URL": "postgresql://cms@db/cms",
                "STRIPE_SYNC_STATE_URL": "sqlite:///s.db",
            },
            "",
        ),
        ({"STRIPE_SYNC_THROTTLE_URL": "redis://cache:6379/0"}, "redis://cache:6379/0"),
    ],
)
def test_the_throttle_follows_the_state_database_when_it_is_postgresql(
    tmp_path, variables, throttle
):
    settings = load_settings(environ=variables, cwd=tmp_path)

    store, _setting = throttle_store(settings)

    assert (store.variable if store else "") == (
        next((name for name, value in variables.items() if value == throttle), "")
    )


def test_the_rules_follow_the_settings_and_a_runs_choice_over_them(tmp_path):
    settings = load_settings(
        environ={"STRIPE_SYNC_CATALOG_CURRENCY": "usd", "STRIPE_SYNC_SKIP_VALIDATION": "true"},
        cwd=tmp_path,
    )

    assert validation_rules(settings).default_currency == "usd"  # the catalog's one currency
    assert validation_rules(settings).skip_validation is True
    assert validation_rules(settings, skip_validation=False).skip_validation is False


def test_the_stripe_api_takes_the_throttle_fraction_of_the_settings(tmp_path):
    settings = load_settings(
        environ={
            "STRIPE_SECRET_KEY": "sk_test_factory0123456789",
            "STRIPE_SYNC_THROTTLE_FRACTION": "0.5",
            "STRIPE_SYNC_THROTTLE_URL": "memory://",
        },
        cwd=tmp_path,
    )

    with opened_stripe_api(settings) as api:
        assert api.rate == pytest.approx(25 * 0.5)  # of test mode's 25 requests/s
