from __future__ import annotations

import builtins

import pytest

from roost import errors


@pytest.mark.parametrize(("code", "cls"), sorted(errors.ERROR_CODES.items()))
def test_every_code_maps_to_a_class_with_its_status(code: str, cls: type[errors.APIError]) -> None:
    error = errors.error_from_payload(
        cls.default_status or 400, {"error": {"code": code, "message": "m", "details": {}}}
    )
    assert isinstance(error, cls)
    assert error.code == code
    assert error.to_dict() == {"code": code, "message": "m", "details": {}}


def test_unknown_code_falls_back_on_status() -> None:
    assert isinstance(
        errors.error_from_payload(404, {"error": {"code": "zzz"}}), errors.NotFoundError
    )
    assert isinstance(errors.error_from_payload(502, "not json"), errors.ServerError)


def test_rate_limit_error_carries_retry_after() -> None:
    error = errors.error_from_payload(429, {"error": {"code": "rate_limited"}}, retry_after=7)
    assert isinstance(error, errors.RateLimitError)
    assert error.retry_after == 7
    assert error.details["retry_after"] == 7


def test_network_errors_are_also_builtin_errors() -> None:
    assert issubclass(errors.TimeoutError, builtins.TimeoutError)
    assert issubclass(errors.ConnectionError, builtins.ConnectionError)
    assert issubclass(errors.NotAuthenticatedError, errors.AuthenticationError)
    assert issubclass(errors.SecureTableError, errors.AuthorizationError)
