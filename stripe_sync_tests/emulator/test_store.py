import pytest

from stripe_sync.emulator.errors import StripeApiError
from stripe_sync.emulator.store import MAX_INTERVAL_COUNT, StripeState


def price_params(**recurring):
    return {"product": "p", "currency": "usd", "unit_amount": 100, "recurring": recurring}


@pytest.fixture
def state():
    state = StripeState()
    state.create_product({"id": "p", "name": "P"})
    return state


@pytest.mark.parametrize("interval", sorted(MAX_INTERVAL_COUNT))
def test_the_longest_interval_of_each_unit_is_kept_and_one_more_is_refused(state, interval):
    longest = MAX_INTERVAL_COUNT[interval]
    kept = state.create_price(price_params(interval=interval, interval_count=longest))
    assert kept["recurring"]["interval_count"] == longest
    with pytest.raises(StripeApiError) as error:
        state.create_price(price_params(interval=interval, interval_count=longest + 1))
    assert (error.value.status, error.value.param) == (400, "recurring[interval_count]")


def test_the_day_limit_is_three_years_of_365_days():
    # Stripe names 3 years, 36 months and 156 weeks; days are the emulator's reading.
    assert MAX_INTERVAL_COUNT == {"day": 1095, "week": 156, "month": 36, "year": 3}


def test_an_unknown_interval_names_the_allowed_ones(state):
    with pytest.raises(StripeApiError) as error:
        state.create_price(price_params(interval="fortnight"))
    assert error.value.message == (
        "Invalid recurring[interval]: must be one of day, week, month, or year"
    )
