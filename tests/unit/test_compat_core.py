"""The compatibility entry points' parts without I/O: settings, names, answers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from roost import AuthenticationError, ConfigurationError, ValidationError, VerifyResult
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
from roost.compat._core.dotdo import api_url_of
from roost.compat._core.dotdo import tenant_of as dotdo_tenant_of
from roost.compat._core.synap import ClientConfig
from roost.compat._core.taruvi import client_options as taruvi_options
from roost.compat._core.taruvi import expiry_of, mode_of, refuse_role_filter


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


@pytest.mark.parametrize(
    ("endpoint", "api_url"),
    [
        ("wss://api.example.com/rpc", "https://api.example.com"),
        ("ws://127.0.0.1:48800/rpc/", "http://127.0.0.1:48800"),
        ("ws://127.0.0.1:48800/api/v1/ws", "http://127.0.0.1:48800"),
        ("https://roost.example.com/base", "https://roost.example.com/base"),
        ("WS://host:1", "http://host:1"),
    ],
)
def test_a_dotdo_endpoint_names_the_server(endpoint: str, api_url: str) -> None:
    assert api_url_of(endpoint) == api_url


@pytest.mark.parametrize(
    "endpoint", ["ftp://host/rpc", "wss:///rpc", "host:8787", "", "ws\x00://host"]
)
def test_a_dotdo_endpoint_that_is_no_server_url_is_refused_naming_the_field(endpoint: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        api_url_of(endpoint)
    assert refused.value.details == {"field": "endpoint"}


def test_dotdos_tenant_header_is_read_whatever_its_case() -> None:
    assert dotdo_tenant_of({"x-tenant-id": "acme", "X-Request-ID": "r"}) == "acme"
    assert dotdo_tenant_of({"X-Roost-Tenant": "acme"}) == "acme"
    assert dotdo_tenant_of({"X-Custom": "value"}) is None
    assert dotdo_tenant_of(None) is None


@pytest.mark.parametrize("tenant", ["bad\x00tenant", "a" * 300, "../x", "Acme", ""])
def test_a_dotdo_tenant_header_that_names_no_tenant_is_refused(tenant: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        dotdo_tenant_of({"X-Tenant-ID": tenant})
    assert refused.value.details == {"field": "headers"}


def test_taruvi_settings_come_from_arguments_then_taruvi_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TARUVI_API_URL", "http://env:1")
    monkeypatch.setenv("TARUVI_APP_SLUG", "env-app")
    monkeypatch.setenv("TARUVI_SITE_SLUG", "env-site")
    monkeypatch.setenv("TARUVI_TIMEOUT", "60")
    monkeypatch.delenv("TARUVI_MAX_RETRIES", raising=False)
    assert taruvi_options(None, "my-app", None, None, 5) == {
        "api_url": "http://env:1",
        "app": "my-app",
        "tenant": "env-site",
        "timeout": "60",
        "max_retries": 5,
    }
    with pytest.raises(ConfigurationError) as refused:
        taruvi_options(None, None, "site_with\x00nul", None, None)
    assert refused.value.details == {"field": "site_slug"}


def test_taruvi_mode_is_sync_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TARUVI_MODE", raising=False)
    assert mode_of(None) == "sync"
    monkeypatch.setenv("TARUVI_MODE", "async")
    assert (mode_of(None), mode_of("sync")) == ("async", "sync")
    with pytest.raises(ConfigurationError):
        mode_of("both")


def test_taruvi_expiry_reads_iso_strings_and_refuses_others() -> None:
    assert expiry_of("2025-12-31T23:59:59Z") == datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert expiry_of(None) is None
    for bad in ("soon", "2025-13-01", "\x00", "9" * 10_000):
        with pytest.raises(ValidationError) as refused:
            expiry_of(bad)
        assert refused.value.details == {"field": "expires_at"}


def test_taruvi_role_filter_is_refused_never_ignored() -> None:
    refuse_role_filter(None)
    refuse_role_filter("")
    with pytest.raises(ValidationError):
        refuse_role_filter("admin,editor")
    with pytest.raises(ValidationError):
        refuse_role_filter(["admin"])
