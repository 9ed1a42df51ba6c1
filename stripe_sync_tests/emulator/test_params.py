import pytest
import stripe.params as sp

from stripe_sync.emulator.errors import StripeApiError
from stripe_sync.emulator.params import coerce, decode_form


def test_bracket_keys_decode_into_nested_hashes_and_appended_lists():
    decoded = decode_form(
        [
            ("metadata[cms_id]", "42"),
            ("images[0]", "a"),
            ("images[1]", "b"),
            ("expand[]", "x"),
            ("expand[]", "y"),
        ]
    )
    assert decoded == {
        "metadata": {"cms_id": "42"},
        "images": {"0": "a", "1": "b"},
        "expand": {"0": "x", "1": "y"},
    }


def test_a_malformed_bracket_key_is_an_invalid_request():
    with pytest.raises(StripeApiError) as error:
        decode_form([("metadata[a[b]]", "x")])
    assert error.value.status == 400


def test_parameters_are_coerced_to_the_types_of_the_sdk_typeddict():
    params = coerce(
        decode_form(
            [
                ("name", "Hat"),
                ("active", "false"),
                ("images[0]", "https://a"),
                ("default_price_data[currency]", "eur"),
                ("default_price_data[unit_amount]", "1250"),
            ]
        ),
        sp.ProductCreateParams,
    )
    assert params == {
        "name": "Hat",
        "active": False,
        "images": ["https://a"],
        "default_price_data": {"currency": "eur", "unit_amount": 1250},
    }


def test_metadata_keys_that_look_like_indexes_stay_hash_keys():
    params = coerce(decode_form([("name", "Hat"), ("metadata[0]", "zero")]), sp.ProductCreateParams)
    assert params["metadata"] == {"0": "zero"}


def test_an_unknown_top_level_parameter_is_parameter_unknown():
    with pytest.raises(StripeApiError) as error:
        coerce({"name": "Hat", "foo": "1"}, sp.ProductCreateParams)
    assert (error.value.code, error.value.param, error.value.message) == (
        "parameter_unknown",
        "foo",
        "Received unknown parameter: foo",
    )


def test_several_unknown_parameters_are_named_together_with_the_first_as_param():
    with pytest.raises(StripeApiError) as error:
        coerce({"unit_amount": "5", "currency": "eur"}, sp.PriceUpdateParams)
    assert error.value.message == "Received unknown parameters: unit_amount, currency"
    assert error.value.param == "unit_amount"


def test_an_unknown_nested_parameter_is_named_with_its_brackets():
    with pytest.raises(StripeApiError) as error:
        coerce(
            {"name": "Hat", "default_price_data": {"currency": "eur", "lookup_key": "k"}},
            sp.ProductCreateParams,
        )
    assert error.value.param == "default_price_data[lookup_key]"


def test_client_options_of_the_sdk_are_not_wire_parameters():
    with pytest.raises(StripeApiError) as error:
        coerce({"name": "Hat", "api_key": "sk_test_x"}, sp.ProductCreateParams)
    assert error.value.code == "parameter_unknown"


def test_a_missing_required_nested_parameter_is_parameter_missing():
    with pytest.raises(StripeApiError) as error:
        coerce({"name": "Hat", "default_price_data": {"unit_amount": "5"}}, sp.ProductCreateParams)
    assert (error.value.code, error.value.message) == (
        "parameter_missing",
        "Missing required param: default_price_data[currency].",
    )


@pytest.mark.parametrize("value", ["abc", "1.5", "", " 5", "1_000"])
def test_an_integer_parameter_accepts_only_digits(value):
    with pytest.raises(StripeApiError) as error:
        coerce({"limit": value}, sp.ProductListParams)
    assert error.value.code == "parameter_invalid_integer"
    assert error.value.message == f"Invalid integer: {value}"


@pytest.mark.parametrize("value", ["True", "1", "yes"])
def test_a_boolean_parameter_accepts_only_lowercase_true_or_false(value):
    with pytest.raises(StripeApiError) as error:
        coerce({"active": value}, sp.ProductListParams)
    assert error.value.message == f"Invalid boolean: {value}"


def test_an_empty_string_unsets_an_optional_field_on_update():
    assert coerce({"description": "", "images": ""}, sp.ProductUpdateParams) == {
        "description": "",
        "images": "",
    }


def test_a_scalar_where_a_list_is_expected_is_an_invalid_array():
    with pytest.raises(StripeApiError) as error:
        coerce({"name": "Hat", "images": "https://a"}, sp.ProductCreateParams)
    assert (error.value.message, error.value.param) == ("Invalid array", "images")


def test_created_accepts_an_integer_or_a_range():
    assert coerce({"created": "5"}, sp.ProductListParams) == {"created": 5}
    assert coerce({"created": {"gte": "5"}}, sp.ProductListParams) == {"created": {"gte": 5}}


def test_metadata_on_update_may_be_a_hash_or_an_empty_string():
    assert coerce({"metadata": {"a": "1"}}, sp.ProductUpdateParams) == {"metadata": {"a": "1"}}
    assert coerce({"metadata": ""}, sp.ProductUpdateParams) == {"metadata": ""}
