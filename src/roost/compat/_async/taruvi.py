"""Taruvi's clients over the native SDK: `AsyncTaruviClient` (and the generated
`TaruviClient`), made by `roost.compat.taruvi.Client(mode=...)`.

They are Roost's clients, subclassed so that signing in keeps the Taruvi client (Roost's
`_derive` makes a client of the same class): settings from Taruvi's arguments and `TARUVI_*`,
its AuthManager (`roost.compat._taruvi_auth`), `client.app.roles()`, and the user calls it
spells its own way. Functions, database, storage, secrets, policy, analytics and settings
are Roost's namespaces, which already take Taruvi's names and shapes.
"""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import Any

from roost.client._async.client import AsyncClient
from roost.client._async.users import AsyncUsers
from roost.client._core.namespace import Namespace
from roost.compat._core.taruvi import as_app, client_options, expiry_of, refuse_role_filter
from roost.compat._taruvi_auth import AsyncTaruviAuth


class AsyncTaruviUsers(AsyncUsers):
    """Roost's user namespace with Taruvi's `roles=` and string `expires_at`."""

    async def list_users(
        self,
        search: str | None = None,
        is_active: bool | None = None,
        page: int = 1,
        page_size: int = 50,
        *,
        roles: str | list[str] | None = None,
    ) -> dict[str, Any]:
        """`{"items", "total", "page", "page_size"}` of users; `roles=` is refused (Roost has
        no role filter, and an unfiltered page must not pass for a filtered one).

        Example:
            users = await client.users.list_users(search="alice", is_active=True, page_size=20)
        """
        refuse_role_filter(roles)
        return await super().list_users(search, is_active, page, page_size)

    async def assign_roles(
        self, roles: list[str], usernames: list[str], expires_at: datetime | str | None = None
    ) -> int:
        """Give roles to users, until `expires_at` (a datetime or an ISO 8601 string).

        Example:
            await client.users.assign_roles(["editor"], ["alice"], "2030-12-31T23:59:59Z")
        """
        return await super().assign_roles(roles, usernames, expiry_of(expires_at))

    async def get_user_apps(self, username: str) -> list[dict[str, Any]]:
        """The tenants the person with the account `username` works in, as Taruvi's apps:
        each with its `slug` (the tenant) and `name`, and Roost's `tenant`, `display_name`,
        `home`, `username`, `roles` (see `users.memberships`).

        Example:
            apps = await client.users.get_user_apps("alice")
        """
        return [as_app(membership) for membership in await self.memberships(username)]


class AsyncTaruviApp(Namespace):
    """The app's own definitions (Taruvi's `client.app`)."""

    _client: AsyncClient

    async def roles(self) -> list[str]:
        """The names of the roles defined in the tenant.

        Example:
            roles = await client.app.roles()
        """
        return [role["name"] for role in await self._client.roles.list()]


class AsyncTaruviClient(AsyncClient):
    """A Taruvi client on Roost: `Client(mode="async", api_url=..., app_slug=...)`; unset
    settings come from `TARUVI_*`, then `ROOST_*`. `site_slug` names the tenant.

    Example:
        client = AsyncTaruviClient(api_url="http://127.0.0.1:8787", app_slug="my-app")
        auth_client = client.auth.signInWithPassword(username="alice", password="secret")
    """

    def __init__(
        self,
        api_url: str | None = None,
        app_slug: str | None = None,
        *,
        site_slug: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> None:
        taruvi = client_options(api_url, app_slug, site_slug, timeout, max_retries)
        super().__init__(**taruvi, **options)

    @cached_property
    def auth(self) -> AsyncTaruviAuth:
        """Taruvi's AuthManager: `signInWithPassword`, `signInWithToken`, `signOut`."""
        return AsyncTaruviAuth(self)

    @cached_property
    def users(self) -> AsyncTaruviUsers:
        """Users of the tenant, by username."""
        return AsyncTaruviUsers(self)

    @cached_property
    def app(self) -> AsyncTaruviApp:
        """The app's roles."""
        return AsyncTaruviApp(self)
