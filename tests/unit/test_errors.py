from __future__ import annotations

import builtins
import re
from pathlib import Path

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


def test_every_error_class_is_raised_somewhere() -> None:
    """A class users could catch but nothing raises would be an `except` that never fires: each
    one is named by the code that raises it (server or SDK), not only here and in `roost`."""
    package = Path(errors.__file__).parent
    declared = {package / "errors.py", package / "__init__.py"}
    elsewhere = "\n".join(
        path.read_text() for path in package.rglob("*.py") if path not in declared
    )
    classes = [
        cls
        for name, cls in vars(errors).items()
        if isinstance(cls, type) and issubclass(cls, errors.RoostError) and not name.startswith("_")
    ]
    never = [cls.__name__ for cls in classes if not re.search(rf"\b{cls.__name__}\b", elsewhere)]
    assert never == []
