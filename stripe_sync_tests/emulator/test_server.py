import json
import urllib.error
import urllib.request

import pytest
import stripe

from stripe_sync.emulator import EmulatorConfig, EmulatorControl, run_emulator
from stripe_sync.emulator.server import mask_key


def client_for(base_url: str, key: str = "sk_test_server", retries: int = 0) -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": base_url}, max_network_retries=retries)


@pytest.fixture(scope="module")
def base_url():
    with run_emulator() as url:
        yield url


@pytest.fixture
def control(base_url):
    control = EmulatorControl(base_url)
    yield control
    control.configure(**{k: v for k, v in EmulatorConfig().to_dict().items()})


@pytest.mark.parametrize(
    ("key", "masked"),
    [
        ("sk_test_placeholder", "sk_test_*******lder"),
        ("sk_test_abc123", "sk_test_**c123"),
        ("undefined", "*****ined"),
    ],
)
def test_a_key_in_an_error_shows_only_its_prefix_and_last_four_characters(key, masked):
    assert mask_key(key) == masked


def test_state_survives_a_restart_through_the_state_file(tmp_path):
    state_file = tmp_path / "stripe.json"
    with run_emulator(state_file=state_file) as url:
        client_for(url).v1.products.create(
            params={
                "id": "kept",
                "name": "Kept",
                "default_price_data": {"currency": "eur", "unit_amount": 100},
            }
        )
    with run_emulator(state_file=state_file) as url:
        product = client_for(url).v1.products.retrieve("kept", params={"expand": ["default_price"]})
    assert product.default_price.unit_amount == 100


def test_a_fault_after_execution_hides_a_write_that_a_retry_with_the_same_key_replays(
    base_url, control
):
    control.configure(fault_rate=1.0, fault_kinds=["500"], fault_after_execution_share=1.0, seed=1)
    client = client_for(base_url)
    with pytest.raises(stripe.APIError):
        client.v1.products.create(
            params={"id": "hidden_write", "name": "X"}, options={"idempotency_key": "k-hidden"}
        )
    control.configure(fault_rate=0.0)
    replayed = client.v1.products.create(
        params={"id": "hidden_write", "name": "X"}, options={"idempotency_key": "k-hidden"}
    )
    assert replayed.last_response.headers["Idempotent-Replayed"] == "true"
    assert replayed.id == "hidden_write"


def test_a_fault_before_execution_is_not_saved_under_the_idempotency_key(base_url, control):
    control.configure(fault_rate=1.0, fault_kinds=["503"], fault_after_execution_share=0.0, seed=1)
    client = client_for(base_url)
    with pytest.raises(stripe.APIError):
        client.v1.products.create(
            params={"id": "not_written", "name": "X"}, options={"idempotency_key": "k-503"}
        )
    control.configure(fault_rate=0.0)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.products.retrieve("not_written")
    created = client.v1.products.create(
        params={"id": "not_written", "name": "X"}, options={"idempotency_key": "k-503"}
    )
    assert "Idempotent-Replayed" not in created.last_response.headers


def test_stripe_pythons_own_retries_ride_through_injected_faults_without_duplicates(
    base_url, control
):
    control.configure(fault_rate=0.3, fault_kinds=["500", "503", "drop"], seed=4)
    client = client_for(base_url, retries=10)
    for n in range(6):
        client.v1.prices.create(
            params={
                "product": _product(base_url, f"retry_{n}"),
                "currency": "eur",
                "unit_amount": 5,
            }
        )
    faults = [r["fault"] for r in control.requests() if r["fault"]]
    control.configure(fault_rate=0.0)
    prices = [
        p for n in range(6) for p in client.v1.prices.list(params={"product": f"retry_{n}"}).data
    ]
    assert len(prices) == 6 + 6  # each product's default price plus the one created above
    assert faults  # the faults did strike


def _product(base_url: str, product_id: str) -> str:
    client_for(base_url, retries=10).v1.products.create(
        params={
            "id": product_id,
            "name": "P",
            "default_price_data": {"currency": "eur", "unit_amount": 1},
        }
    )
    return product_id


def test_the_request_log_records_every_api_request_with_its_outcome(base_url, control):
    control.reset()
    client_for(base_url).v1.products.create(
        params={"name": "Logged"}, options={"idempotency_key": "k-log"}
    )
    with pytest.raises(stripe.InvalidRequestError):
        client_for(base_url).v1.products.retrieve("nope")
    create, missing = control.requests()
    assert create["endpoint"] == "POST /v1/products" and create["status"] == 200
    assert create["idempotency_key"] == "k-log" and create["replayed"] is False
    assert missing["endpoint"] == "GET /v1/products/{id}" and missing["status"] == 404
    assert missing["started_at"] <= missing["ended_at"]


def test_the_request_log_never_holds_the_api_key(base_url, control):
    client_for(base_url, key="sk_test_secretvalue123").v1.accounts.retrieve_current()
    assert "secretvalue" not in json.dumps(control.requests())


def test_a_live_key_is_refused_by_a_test_mode_emulator(base_url):
    with pytest.raises(stripe.AuthenticationError) as error:
        client_for(base_url, key="sk_live_abcdefgh").v1.accounts.retrieve_current()
    assert "sk_live_****efgh" in str(error.value)


def test_only_the_configured_keys_are_accepted_when_keys_are_set(base_url, control):
    control.configure(api_keys=["sk_test_right"])
    with pytest.raises(stripe.AuthenticationError):
        client_for(base_url, key="sk_test_wrong").v1.accounts.retrieve_current()
    assert (
        client_for(base_url, key="sk_test_right").v1.accounts.retrieve_current().object == "account"
    )


def test_an_unknown_url_answers_stripes_unrecognized_request_url(base_url):
    request = urllib.request.Request(
        f"{base_url}/v1/skus", headers={"Authorization": "Bearer sk_test_x"}
    )
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request)
    assert error.value.code == 404
    assert json.load(error.value)["error"]["message"].startswith(
        "Unrecognized request URL (GET: /v1/skus)"
    )


def test_an_unknown_setting_is_refused_by_the_control_api(base_url):
    with pytest.raises(urllib.error.HTTPError) as error:
        EmulatorControl(base_url).configure(latency=5)
    assert error.value.code == 400


def test_reset_forgets_objects_and_the_request_log_but_keeps_the_knobs(base_url, control):
    client_for(base_url).v1.products.create(params={"id": "before_reset", "name": "X"})
    control.configure(latency_ms=1)
    control.reset()
    assert control.requests() == []
    assert control.config()["latency_ms"] == 1
    with pytest.raises(stripe.InvalidRequestError):
        client_for(base_url).v1.products.retrieve("before_reset")
