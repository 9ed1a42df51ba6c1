"""Stripe's error answers, as the emulator sends them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StripeApiError(Exception):
    """An error answer: HTTP status plus Stripe's `{"error": {...}}` body."""

    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None

    def body(self) -> dict:
        error: dict = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        return {"error": error}


def invalid_request(
    message: str, *, code: str | None = None, param: str | None = None
) -> StripeApiError:
    return StripeApiError(400, message, code=code, param=param)


def parameter_unknown(*params: str) -> StripeApiError:
    noun = "parameter" if len(params) == 1 else "parameters"
    return invalid_request(
        f"Received unknown {noun}: {', '.join(params)}", code="parameter_unknown", param=params[0]
    )


def parameter_missing(param: str) -> StripeApiError:
    return invalid_request(
        f"Missing required param: {param}.", code="parameter_missing", param=param
    )


def resource_missing(kind: str, object_id: str, param: str = "id") -> StripeApiError:
    return StripeApiError(
        404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param
    )
