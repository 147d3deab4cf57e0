"""`client.api_keys`, `client.users`, `client.roles`, `client.tenants`, `client.health`."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient


class _Namespace:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client


class AsyncApiKeys(_Namespace):
    async def create(
        self,
        name: str,
        scopes: list[str] | None = None,
        *,
        expires_at: datetime | None = None,
        expires_in: int | None = None,
    ) -> dict[str, Any]:
        """Create an API key for the signed-in user. `result["key"]` is shown only here.

        Without `scopes` the key acts with all of its owner's scopes.

        Example:
            key = (await admin.api_keys.create("ci", ["api_keys:read"], expires_in=86400))["key"]
        """
        params: dict[str, Any] = {"name": name, "scopes": scopes or []}
        if expires_at is not None:
            params["expires_at"] = expires_at.isoformat()
        if expires_in is not None:
            params["expires_in"] = expires_in
        result: dict[str, Any] = await self._client.call("api_keys.create", params)
        return result

    async def list(self) -> list[dict[str, Any]]:
        """The caller's API keys without their secrets, newest first.

        Example:
            names = [key["name"] for key in await admin.api_keys.list()]
        """
        result: list[dict[str, Any]] = await self._client.call("api_keys.list", idempotent=True)
        return result

    async def revoke(self, key_id: str) -> dict[str, Any]:
        """Revoke a key by its id; it is refused from then on.

        Example:
            await admin.api_keys.revoke(key["id"])
        """
        result: dict[str, Any] = await self._client.call("api_keys.revoke", {"id": key_id})
        return result


class AsyncUsers(_Namespace):
    async def create_user(
        self,
        username: str,
        password: str,
        *,
        email: str = "",
        confirm_password: str | None = None,
        first_name: str = "",
        last_name: str = "",
        is_active: bool = True,
        is_staff: bool = False,
        is_superuser: bool = False,
        roles: list[str] | None = None,
    ) -> dict[str, Any]:
        """Create a user (scope `users:write`); without roles the user gets `member`.

        Example:
            bob = await admin.users.create_user("bob", "a-long-password", roles=["member"])
        """
        params: dict[str, Any] = {
            "username": username,
            "password": password,
            "email": email,
            "first_name": first_name,
            "last_name": last_name,
            "is_active": is_active,
            "is_staff": is_staff,
            "is_superuser": is_superuser,
            "roles": roles or [],
        }
        if confirm_password is not None:
            params["confirm_password"] = confirm_password
        result: dict[str, Any] = await self._client.call("users.create_user", params)
        return result

    async def get_user(self, username: str) -> dict[str, Any]:
        """One user by username (scope `users:read`).

        Example:
            bob = await admin.users.get_user("bob")
        """
        result: dict[str, Any] = await self._client.call(
            "users.get_user", {"username": username}, idempotent=True
        )
        return result

    async def list_users(
        self,
        search: str | None = None,
        is_active: bool | None = None,
        page: int = 1,
        page_size: int = 50,
    ) -> dict[str, Any]:
        """`{"items", "total", "page", "page_size"}` of users (scope `users:read`).

        Example:
            page = await admin.users.list_users(search="bo", page_size=20)
        """
        params: dict[str, Any] = {"page": page, "page_size": page_size}
        if search is not None:
            params["search"] = search
        if is_active is not None:
            params["is_active"] = is_active
        result: dict[str, Any] = await self._client.call(
            "users.list_users", params, idempotent=True
        )
        return result

    async def update_user(
        self,
        username: str,
        *,
        email: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        is_active: bool | None = None,
        is_staff: bool | None = None,
        password: str | None = None,
    ) -> dict[str, Any]:
        """Change a user's fields (scope `users:write`); what is left out stays. A new
        password or `is_active=False` signs the user out everywhere.

        Example:
            await admin.users.update_user("bob", is_active=False)
        """
        fields = {
            "email": email,
            "first_name": first_name,
            "last_name": last_name,
            "is_active": is_active,
            "is_staff": is_staff,
            "password": password,
        }
        params = {"username": username} | {k: v for k, v in fields.items() if v is not None}
        result: dict[str, Any] = await self._client.call("users.update_user", params)
        return result

    async def assign_roles(
        self, roles: list[str], usernames: list[str], expires_at: datetime | None = None
    ) -> int:
        """Give roles to users, until `expires_at` if given (scope `users:write`; only roles
        whose scopes you hold). Returns how many assignments were made.

        Example:
            await admin.users.assign_roles(["auditor"], ["bob"], expires_at=next_week)
        """
        params: dict[str, Any] = {"roles": roles, "usernames": usernames}
        if expires_at is not None:
            params["expires_at"] = expires_at.isoformat()
        result = await self._client.call("users.assign_roles", params, idempotent=True)
        return int(result["count"])

    async def revoke_roles(self, roles: list[str], usernames: list[str]) -> int:
        """Take roles from users (scope `users:write`); returns how many they had.

        Example:
            await admin.users.revoke_roles(["auditor"], ["bob"])
        """
        params = {"roles": roles, "usernames": usernames}
        result = await self._client.call("users.revoke_roles", params, idempotent=True)
        return int(result["count"])

    async def delete_user(self, username: str) -> dict[str, Any]:
        """Delete a user with their sessions and keys (scope `users:write`).

        Example:
            await admin.users.delete_user("bob")
        """
        result: dict[str, Any] = await self._client.call(
            "users.delete_user", {"username": username}
        )
        return result


class AsyncRoles(_Namespace):
    async def create(
        self, name: str, scopes: list[str] | None = None, description: str = ""
    ) -> dict[str, Any]:
        """Create a role carrying scopes (scope `roles:write`).

        Example:
            await admin.roles.create("auditor", ["users:read"])
        """
        result: dict[str, Any] = await self._client.call(
            "roles.create", {"name": name, "scopes": scopes or [], "description": description}
        )
        return result

    async def update(
        self, name: str, scopes: list[str] | None = None, description: str | None = None
    ) -> dict[str, Any]:
        """Change a role's scopes or description (scope `roles:write`); its users have the
        new scopes at once. The built-in `admin` role cannot change.

        Example:
            await admin.roles.update("member", ["api_keys:read", "api_keys:write", "kv:read"])
        """
        params: dict[str, Any] = {"name": name}
        if scopes is not None:
            params["scopes"] = scopes
        if description is not None:
            params["description"] = description
        result: dict[str, Any] = await self._client.call("roles.update", params, idempotent=True)
        return result

    async def delete(self, name: str) -> None:
        """Delete a role; its users lose it (scope `roles:write`; not a built-in role).

        Example:
            await admin.roles.delete("auditor")
        """
        await self._client.call("roles.delete", {"name": name})

    async def list(self) -> list[dict[str, Any]]:
        """Every role of the tenant (scope `roles:read`).

        Example:
            names = [role["name"] for role in await admin.roles.list()]
        """
        result: list[dict[str, Any]] = await self._client.call("roles.list", idempotent=True)
        return result


class AsyncScopes(_Namespace):
    async def create(self, name: str, description: str = "") -> dict[str, Any]:
        """Define a scope for your app, `module:action` (scope `roles:write`).

        Example:
            await admin.scopes.create("reports:export", "download reports as CSV")
        """
        result: dict[str, Any] = await self._client.call(
            "scopes.create", {"name": name, "description": description}
        )
        return result

    async def delete(self, name: str) -> None:
        """Delete a scope your tenant defined (scope `roles:write`).

        Example:
            await admin.scopes.delete("reports:export")
        """
        await self._client.call("scopes.delete", {"name": name})

    async def list(self) -> list[dict[str, Any]]:
        """Every scope there is to give, the platform's (`builtin`) and your own (scope
        `roles:read`).

        Example:
            names = [scope["name"] for scope in await admin.scopes.list()]
        """
        result: list[dict[str, Any]] = await self._client.call("scopes.list", idempotent=True)
        return result


class AsyncTenants(_Namespace):
    async def create(
        self,
        name: str,
        display_name: str = "",
        *,
        admin_username: str | None = None,
        admin_password: str | None = None,
        admin_email: str = "",
    ) -> dict[str, Any]:
        """Create a tenant with its own database (platform admins), and optionally its first
        superuser.

        Example:
            await admin.tenants.create("acme", "Acme Corp", admin_username="root",
                                       admin_password="a-long-password")
        """
        params: dict[str, Any] = {
            "name": name,
            "display_name": display_name,
            "admin_email": admin_email,
        }
        if admin_username is not None:
            params["admin_username"] = admin_username
        if admin_password is not None:
            params["admin_password"] = admin_password
        result: dict[str, Any] = await self._client.call("tenants.create", params)
        return result

    async def set_kv_ttl_bounds(
        self, name: str, min_ttl: int | None = None, max_ttl: int | None = None
    ) -> dict[str, Any]:
        """Bound the ttl of a tenant's KV keys (both None: the server's bounds apply again).

        Example:
            await admin.tenants.set_kv_ttl_bounds("acme", min_ttl=60, max_ttl=86400)
        """
        params = {"name": name, "min_ttl": min_ttl, "max_ttl": max_ttl}
        result: dict[str, Any] = await self._client.call(
            "tenants.set_kv_ttl_bounds", params, idempotent=True
        )
        return result

    async def create_category(
        self, name: str, tables: list[dict[str, Any]], description: str = ""
    ) -> dict[str, Any]:
        """Save a template of tables (`[{"name", "columns", ...}]`, as schema.add_table).

        Example:
            await admin.tenants.create_category("clinic", [{"name": "patients", "columns": [
                {"name": "name", "type": "text"}]}])
        """
        result: dict[str, Any] = await self._client.call(
            "tenants.create_category", {"name": name, "tables": tables, "description": description}
        )
        return result

    async def categories(self) -> list[dict[str, Any]]:
        """Every category.

        Example:
            names = [c["name"] for c in await admin.tenants.categories()]
        """
        result: list[dict[str, Any]] = await self._client.call(
            "tenants.categories", idempotent=True
        )
        return result

    async def get(self, name: str) -> dict[str, Any]:
        """One tenant.

        Example:
            acme = await admin.tenants.get("acme")
        """
        result: dict[str, Any] = await self._client.call(
            "tenants.get", {"name": name}, idempotent=True
        )
        return result

    async def list(self) -> list[dict[str, Any]]:
        """Every tenant.

        Example:
            names = [t["name"] for t in await admin.tenants.list()]
        """
        result: list[dict[str, Any]] = await self._client.call("tenants.list", idempotent=True)
        return result

    async def delete(self, name: str) -> dict[str, Any]:
        """Delete a tenant and all its data.

        Example:
            await admin.tenants.delete("acme")
        """
        result: dict[str, Any] = await self._client.call("tenants.delete", {"name": name})
        return result


class AsyncHealth(_Namespace):
    async def check(self) -> dict[str, Any]:
        """`{"status", "version", "backends"}`; needs no credential.

        Example:
            assert (await client.health.check())["status"] == "ok"
        """
        result: dict[str, Any] = await self._client.call(
            "health.check", idempotent=True, authenticated=False
        )
        return result
