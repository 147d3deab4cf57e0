"""The compatibility entry points' parts without I/O: settings, names, answers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from roost import AuthenticationError, ValidationError, VerifyResult
from roost.compat._core.credentials import credential_kind
from roost.compat._core.default import LoopLocal
from roost.compat._core.dominus import (
    claims_of,
    client_options,
    is_active_of,
    names_of,
    tenant_of,
    with_display_name,
)
from roost.compat._core.synap import ClientConfig


def test_a_seed_token_is_sent_as_the_credential_its_shape_says() -> None:
    assert credential_kind("rak_default_abc_def") == "api_key"
    assert credential_kind("synap_your_api_key") == "api_key"
    assert credential_kind("rst_default_abc_def") == "session_token"
    assert credential_kind("eyJhbGciOi.eyJzdWIi.c2ln") == "jwt"


def test_dominus_tenants_become_roost_tenant_names() -> None:
    assert tenant_of("tenant_acme") == "acme"
    assert tenant_of("customer_acme") == "customer-acme"
    assert tenant_of("tenant-uuid") == "tenant-uuid"
    assert tenant_of(None) is None
    assert tenant_of("public") is None
    for refused in ("acme\r\nX-Evil: 1", "Acme", "a" * 41, "tenant_", "x/../y"):
        with pytest.raises(ValidationError) as caught:
            tenant_of(refused, "tenant_id")
        assert caught.value.details == {"field": "tenant_id"}


def test_dominus_settings_come_from_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOMINUS_TOKEN", "rak_default_a_b")
    monkeypatch.setenv("CB_PROJECT_SLUG", "billing")
    assert client_options(None, {"timeout": 5}) == {
        "token": "rak_default_a_b",
        "token_type": "api_key",
        "app": "billing",
        "timeout": 5,
    }
    assert client_options("eyJ.a.b", {})["token_type"] == "jwt"  # an argument wins
    monkeypatch.delenv("DOMINUS_TOKEN")
    assert "token" not in client_options(None, {})


def test_claims_only_for_a_valid_token() -> None:
    expires = datetime(2030, 1, 1, tzinfo=UTC)
    valid = VerifyResult(valid=True, user_id="u1", tenant="default", expires_at=expires)
    assert claims_of(valid) == {
        "sub": "u1",
        "user_id": "u1",
        "tenant": "default",
        "exp": int(expires.timestamp()),
    }
    with pytest.raises(AuthenticationError) as caught:
        claims_of(VerifyResult(valid=False, reason="token_expired"))
    assert caught.value.details == {"reason": "token_expired"}


def test_dominus_user_fields() -> None:
    assert is_active_of("active") is True
    assert is_active_of("inactive") is False
    with pytest.raises(ValidationError):
        is_active_of("suspended")
    assert names_of(" John  van Doe ") == {"first_name": "John", "last_name": "van Doe"}
    assert with_display_name({"first_name": "Ann", "last_name": ""})["display_name"] == "Ann"


def test_synap_settings_arguments_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNAP_URL", "http://synap.test:15500")
    monkeypatch.setenv("SYNAP_API_KEY", "rak_default_x_y")
    monkeypatch.setenv("SYNAP_TIMEOUT", "12")
    options = ClientConfig(retries=5, retry_backoff=3.0).native_options()
    assert options == {
        "api_url": "http://synap.test:15500",
        "timeout": "12",
        "max_retries": 5,
        "retry_multiplier": 3.0,
        "token": "rak_default_x_y",
        "token_type": "api_key",
    }
    assert ClientConfig(url="http://other:1").native_options()["api_url"] == "http://other:1"


def test_a_module_level_async_client_has_one_instance_per_event_loop() -> None:
    made: list[object] = []

    def make() -> object:
        made.append(object())
        return made[-1]

    per_loop = LoopLocal(make, per_loop=True)

    async def twice() -> tuple[object, object]:
        return per_loop.get(), per_loop.get()

    first = asyncio.run(twice())
    second = asyncio.run(twice())
    assert first[0] is first[1]
    assert second[0] is second[1]
    assert first[0] is not second[0]

    shared = LoopLocal(make, per_loop=False)
    assert shared.get() is shared.get()
    assert shared.forget() is made[-1]
    assert shared.get() is not made[-2]
