"""A tenant of its own for each compatibility test module on the shared test server, so that
the seeds' examples run with their literal names (`users`, `tasks`, `user:1`) without
meeting other tests' data, nor the other module's (sync and async run the same examples)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from tests.conftest import RunningServer, unique


@dataclass(frozen=True)
class Tenant:
    name: str
    username: str
    password: str
    key: str
    """an API key of the tenant's superuser: all of their scopes"""


def _call(
    server: RunningServer, operation: str, params: dict[str, Any], token: str, tenant: str = ""
) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    if tenant:
        headers["X-Roost-Tenant"] = tenant
    module, _, action = operation.partition(".")
    response = httpx.post(
        f"{server.url}/api/v1/{module}/{action}", json=params, headers=headers, timeout=60
    )
    response.raise_for_status()
    return response.json()


def platform_key(server: RunningServer, admin_token: str) -> str:
    """An API key of the platform admin (the `default` tenant's superuser)."""
    return str(_call(server, "api_keys.create", {"name": unique("compat")}, admin_token)["key"])


def new_tenant(server: RunningServer, admin_token: str, prefix: str) -> Tenant:
    """A new tenant with a superuser `root` and an API key of theirs."""
    name, password = unique(prefix), "root-password-1"
    _call(
        server,
        "tenants.create",
        {"name": name, "admin_username": "root", "admin_password": password},
        admin_token,
    )
    login = httpx.post(
        f"{server.url}/api/v1/auth/login",
        json={"username": "root", "password": password},
        headers={"X-Roost-Tenant": name},
        timeout=60,
    )
    login.raise_for_status()
    access = login.json()["access"]
    key = _call(server, "api_keys.create", {"name": "compat"}, access, tenant=name)["key"]
    return Tenant(name=name, username="root", password=password, key=str(key))
