"""Fixtures of the compatibility tests, sync and async."""

from __future__ import annotations

import pytest

from tests.client._async.conftest import admin_token
from tests.compat.tenants import Tenant, new_tenant, platform_key
from tests.conftest import RunningServer

__all__ = ["admin_token", "platform_api_key", "tenant"]


@pytest.fixture(scope="module")
def tenant(server: RunningServer, admin_token: str) -> Tenant:
    """A tenant of this module's own, with its superuser's API key."""
    return new_tenant(server, admin_token, "compat")


@pytest.fixture(scope="module")
def platform_api_key(server: RunningServer, admin_token: str) -> str:
    """An API key of the platform admin, for the calls that manage tenants."""
    return platform_key(server, admin_token)
