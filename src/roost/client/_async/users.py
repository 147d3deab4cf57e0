"""`client.users`: users of the tenant (admins)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from roost.client._core.arguments import iso_datetime
from roost.client._core.namespace import Namespace, user_ref

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient


class AsyncUsers(Namespace):
    _client: AsyncClient

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

    async def get_user(
        self, username: str | None = None, *, user_id: str | None = None
    ) -> dict[str, Any]:
        """One user by username or by id (scope `users:read`).

        Example:
            bob = await admin.users.get_user("bob")
        """
        result: dict[str, Any] = await self._client.call(
            "users.get_user", user_ref(username, user_id), idempotent=True
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

    async def iter(
        self, search: str | None = None, is_active: bool | None = None, page_size: int = 100
    ) -> AsyncIterator[dict[str, Any]]:
        """Every matching user, page by page.

        Example:
            async for user in admin.users.iter(is_active=True):
                print(user["username"])
        """
        number = 1
        while True:
            page = await self.list_users(search, is_active, number, page_size)
            for user in page["items"]:
                yield user
            if number * page_size >= page["total"] or not page["items"]:
                return
            number += 1

    async def update_user(
        self,
        username: str | None = None,
        *,
        user_id: str | None = None,
        email: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        is_active: bool | None = None,
        is_staff: bool | None = None,
        password: str | None = None,
    ) -> dict[str, Any]:
        """Change a user's fields (scope `users:write`); what is left out stays. The user is
        named by username or by `user_id`. A new password or `is_active=False` signs the user
        out everywhere.

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
        params = user_ref(username, user_id) | {k: v for k, v in fields.items() if v is not None}
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
            params["expires_at"] = iso_datetime("expires_at", expires_at)
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

    async def reset_totp(self, username: str) -> dict[str, Any]:
        """Turn a user's two-factor sign-in off, for one who lost the device and the recovery
        codes (scope `users:write`; only a user whose scopes you hold). `count` is 0 if it
        was not on.

        Example:
            await admin.users.reset_totp("bob")
        """
        result: dict[str, Any] = await self._client.call(
            "auth.reset_user_totp", {"username": username}
        )
        return result

    async def delete_user(
        self, username: str | None = None, *, user_id: str | None = None
    ) -> dict[str, Any]:
        """Delete a user, named by username or by id, with their sessions and keys (scope
        `users:write`).

        Example:
            await admin.users.delete_user("bob")
        """
        result: dict[str, Any] = await self._client.call(
            "users.delete_user", user_ref(username, user_id)
        )
        return result

    async def invite_member(self, username: str, *, expires_in: int = 86400) -> dict[str, Any]:
        """Offer the account `username` of this tenant to a person signed in at home in another
        tenant (scope `users:write`; only an account whose scopes you hold). Give them the
        `code` (`{"code", "tenant", "username", "expires_at"}`): it works once, for
        `expires_in` seconds (60 to a week), with `auth.accept_invitation`.

        Example:
            code = (await admin.users.invite_member("alice-at-acme"))["code"]
        """
        params = {"username": username, "expires_in": expires_in}
        result: dict[str, Any] = await self._client.call("users.invite_member", params)
        return result

    async def remove_membership(self, username: str) -> int:
        """End the memberships of the account `username` (scope `users:write`): its link to
        a person's home elsewhere, or, for a home account, every link it has. The member
        accounts are signed out. Returns how many links there were.

        Example:
            await admin.users.remove_membership("alice-at-acme")
        """
        result = await self._client.call(
            "users.remove_membership", {"username": username}, idempotent=True
        )
        return int(result["count"])

    async def memberships(self, username: str) -> list[dict[str, Any]]:
        """The tenants of the person with the account `username`, home first: `[{"tenant",
        "display_name", "home", "username", "roles"}]`. For that account itself, or with
        scope `users:read`; usernames and roles show for this tenant, and for every tenant
        to the home account itself.

        Example:
            tenants = [m["tenant"] for m in await signed_in.users.memberships("alice")]
        """
        result: list[dict[str, Any]] = await self._client.call(
            "users.memberships", {"username": username}, idempotent=True
        )
        return result
