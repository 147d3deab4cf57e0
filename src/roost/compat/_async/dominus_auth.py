"""Dominus' `auth` (Guardian: users, roles, scopes, tenants, tokens) and `portal` (a user's
own sign-in, sessions, profile and navigation) over the native `users`, `roles`, `scopes`,
`tenants` and `auth` namespaces."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from roost.client._async.client import AsyncClient
from roost.compat._core.credentials import credential_kind
from roost.compat._core.dominus import (
    claims_of,
    is_active_of,
    names_of,
    tenant_of,
    with_display_name,
)
from roost.errors import NotAuthenticatedError

if TYPE_CHECKING:
    from roost.compat._async.dominus import AsyncDominus


class AsyncGuardian:
    """`dominus.auth`. A user is named by id (as Dominus does) or by username."""

    def __init__(self, dominus: AsyncDominus) -> None:
        self._dominus = dominus

    @property
    def _client(self) -> AsyncClient:
        return self._dominus.native

    async def list_users(self, **filters: Any) -> dict[str, Any]:
        """`{"items", "total", "page", "page_size"}` (`search=`, `is_active=`, `page=`).

        Example:
            users = (await dominus.auth.list_users())["items"]
        """
        return await self._client.users.list_users(**filters)

    async def get_user(self, user_id: str) -> dict[str, Any]:
        """One user by id; NotFoundError if there is none.

        Example:
            user = await dominus.auth.get_user(user_id=user["id"])
        """
        return await self._client.users.get_user(user_id=user_id)

    async def add_user(
        self, username: str, password: str, email: str = "", **fields: Any
    ) -> dict[str, Any]:
        """Create a user (`first_name`, `last_name`, `roles`, ... as Roost takes them).

        Example:
            user = await dominus.auth.add_user(username="john", password="secure-password")
        """
        return await self._client.users.create_user(username, password, email=email, **fields)

    async def update_user(
        self, user_id: str, status: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Change a user's fields; `status` is "active" or "inactive".

        Example:
            await dominus.auth.update_user(user["id"], status="inactive")
        """
        if status is not None:
            fields["is_active"] = is_active_of(status)
        return await self._client.users.update_user(user_id=user_id, **fields)

    async def delete_user(self, user_id: str) -> dict[str, Any]:
        """Delete a user with their sessions and keys.

        Example:
            await dominus.auth.delete_user(user["id"])
        """
        return await self._client.users.delete_user(user_id=user_id)

    async def list_roles(self) -> list[dict[str, Any]]:
        """Every role of the tenant.

        Example:
            roles = await dominus.auth.list_roles()
        """
        return await self._client.roles.list()

    async def add_role(
        self, name: str, scope_slugs: list[str] | None = None, description: str = ""
    ) -> dict[str, Any]:
        """Create a role carrying scopes (`module:action`).

        Example:
            await dominus.auth.add_role(name="editor", scope_slugs=["reports:read"])
        """
        return await self._client.roles.create(name, scope_slugs, description)

    async def list_scopes(self) -> list[dict[str, Any]]:
        """Every scope there is to give.

        Example:
            scopes = await dominus.auth.list_scopes()
        """
        return await self._client.scopes.list()

    async def list_tenants(self) -> list[dict[str, Any]]:
        """Every tenant (platform admins).

        Example:
            tenants = await dominus.auth.list_tenants()
        """
        return await self._client.tenants.list()

    async def list_tenant_categories(self) -> list[dict[str, Any]]:
        """Every category: a template of tables for new tenants.

        Example:
            categories = await dominus.auth.list_tenant_categories()
        """
        return await self._client.tenants.categories()

    async def mint_jwt(self, user_id: str, expires_in: int = 900) -> dict[str, Any]:
        """An access token for a user: `{"access", "expires_in", "session_id", "user_id"}`.

        Example:
            jwt = await dominus.auth.mint_jwt(user_id=user["id"], expires_in=900)
        """
        return await self._client.auth.mint_jwt(user_id=user_id, expires_in=expires_in)

    async def validate_jwt(self, token: str) -> dict[str, Any]:
        """The claims of a valid access token (`sub`, `user_id`, `tenant`, `exp`);
        AuthenticationError if it is not valid.

        Example:
            claims = await dominus.auth.validate_jwt(jwt["access"])
        """
        home = await self._dominus.connection.home()
        return claims_of(await home.auth.validate_jwt(token))


class AsyncPortal:
    """`dominus.portal`: after `login` (or `login_client`) its calls act as that user, until
    `logout`; before, as the client's own credential."""

    def __init__(self, dominus: AsyncDominus) -> None:
        self._dominus = dominus

    @property
    def _client(self) -> AsyncClient:
        connection = self._dominus.connection
        return connection.user or connection.client

    async def _in_tenant(self, tenant_id: str | None) -> AsyncClient:
        """The client for calls without a credential: `tenant_id`'s, else the PSK's tenant."""
        tenant = tenant_of(tenant_id, "tenant_id")
        if tenant is None:
            return await self._dominus.connection.home()
        return self._dominus.native._in_tenant(tenant)

    async def login(
        self, username: str, password: str, tenant_id: str | None = None
    ) -> dict[str, Any]:
        """Sign a user in (by username or email), in the tenant `tenant_id` if given; returns
        the session: `{"kind", "tenant", "user_id", "username", "scopes", "session_id"}`.

        Example:
            session = await dominus.portal.login(username="john", password="secret123")
        """
        home = await self._in_tenant(tenant_id)
        user = await home.auth.sign_in_with_password(username, password)
        connection = self._dominus.connection
        connection.user = connection.signed_in = user
        return await user.auth.whoami()

    async def login_client(self, psk: str) -> dict[str, Any]:
        """Act with a service credential (a Roost API key); returns what the server knows of
        it. AuthenticationError if the server refuses it.

        Example:
            session = await dominus.portal.login_client(psk=api_key)
        """
        native = self._dominus.native
        service = await native.auth.sign_in_with_token(psk, token_type=credential_kind(psk))
        found = await service.auth.whoami()
        connection = self._dominus.connection
        connection.user = connection.signed_in = service
        return found

    async def logout(self) -> None:
        """Sign the user out (the server revokes the session) and act as the client again.

        Example:
            await dominus.portal.logout()
        """
        connection = self._dominus.connection
        user, signed_in = connection.user, connection.signed_in
        connection.user = connection.signed_in = None
        if user is not None and user is not signed_in:  # a tenant switched to
            await user.auth.sign_out()
        if signed_in is not None:
            await signed_in.auth.sign_out()

    async def switch_tenant(self, tenant_id: str) -> dict[str, Any]:
        """Act in another tenant where the signed-in user is a member (Roost's
        `auth.switch_tenant`), as their account there, without signing in again; the tenant
        signed in to brings you back. Returns the session, as `login` does. The session of
        the tenant left is signed out.

        Example:
            await dominus.portal.switch_tenant("other-tenant")
        """
        connection = self._dominus.connection
        signed_in = connection.signed_in
        if signed_in is None:
            raise NotAuthenticatedError("sign in with portal.login before switching tenants")
        home = (await signed_in.auth.whoami())["tenant"]
        tenant = tenant_of(tenant_id, "tenant_id") or home
        target = signed_in if tenant == home else await signed_in.auth.switch_tenant(tenant)
        left, connection.user = connection.user, target
        if left is not None and left is not signed_in and left is not target:
            await left.auth.sign_out()
        return await target.auth.whoami()

    async def me(self) -> dict[str, Any]:
        """The signed-in user, with a `display_name`.

        Example:
            me = await dominus.portal.me()
        """
        return with_display_name(await self._client.auth.get_current_user())

    async def get_navigation(self) -> list[dict[str, Any]]:
        """The tree of pages the user may open.

        Example:
            nav = await dominus.portal.get_navigation()
        """
        return await self._client.auth.get_navigation()

    async def check_page_access(self, path: str) -> bool:
        """Whether the user may open the page (NotFoundError if there is no such page).

        Example:
            if await dominus.portal.check_page_access("/dashboard"): ...
        """
        return (await self._client.auth.check_page_access(path)).allowed

    async def get_profile(self) -> dict[str, Any]:
        """The user's own account, with a `display_name`.

        Example:
            profile = await dominus.portal.get_profile()
        """
        return with_display_name(await self._client.auth.get_profile())

    async def update_profile(
        self,
        display_name: str | None = None,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        email: str | None = None,
    ) -> dict[str, Any]:
        """Change the user's names or email; a `display_name` becomes the first and last
        names (split at its first space).

        Example:
            await dominus.portal.update_profile(display_name="John Doe")
        """
        names = names_of(display_name) if display_name is not None else {}
        updated = await self._client.auth.update_profile(
            first_name=names.get("first_name", first_name),
            last_name=names.get("last_name", last_name),
            email=email,
        )
        return with_display_name(updated)

    async def get_preferences(self) -> dict[str, Any]:
        """The user's preferences.

        Example:
            prefs = await dominus.portal.get_preferences()
        """
        return await self._client.auth.get_preferences()

    async def update_preferences(self, **preferences: Any) -> dict[str, Any]:
        """Merge keys into the user's preferences; returns them all.

        Example:
            await dominus.portal.update_preferences(theme="dark")
        """
        return await self._client.auth.update_preferences(preferences)

    async def change_password(self, old_password: str, new_password: str) -> dict[str, Any]:
        """Change the user's password; their other sessions are signed out.

        Example:
            await dominus.portal.change_password("old-password", "new-password")
        """
        return await self._client.auth.change_password(old_password, new_password)

    async def request_password_reset(self, email: str) -> None:
        """Mail a reset link to the account with `email`, if there is one.

        Example:
            await dominus.portal.request_password_reset("john@example.com")
        """
        home = await self._dominus.connection.home()
        await home.auth.request_password_reset(email)

    async def confirm_password_reset(self, token: str, new_password: str) -> None:
        """Set a new password with the token from a reset mail.

        Example:
            await dominus.portal.confirm_password_reset(token, "new-password")
        """
        home = await self._dominus.connection.home()
        await home.auth.confirm_password_reset(token, new_password)

    async def list_sessions(self) -> list[dict[str, Any]]:
        """The user's live sessions.

        Example:
            sessions = await dominus.portal.list_sessions()
        """
        return await self._client.auth.list_sessions()

    async def revoke_session(self, session_id: str) -> dict[str, Any]:
        """Sign out one session of the user.

        Example:
            await dominus.portal.revoke_session(sessions[0]["id"])
        """
        return await self._client.auth.revoke_session(session_id)

    async def revoke_all_sessions(self) -> dict[str, Any]:
        """Sign out every session of the user, this one's included.

        Example:
            await dominus.portal.revoke_all_sessions()
        """
        return await self._client.auth.revoke_all_sessions()

    async def register(
        self, username: str, email: str, password: str, tenant_id: str | None = None
    ) -> dict[str, Any]:
        """Create an account (where the server allows sign-up), in `tenant_id` if given.

        Example:
            await dominus.portal.register("newuser", "new@example.com", "password")
        """
        home = await self._in_tenant(tenant_id)
        return await home.auth.register(username, password, email=email)

    async def verify_email(self, token: str) -> None:
        """Confirm an email address with the token from a verification mail.

        Example:
            await dominus.portal.verify_email(token)
        """
        home = await self._dominus.connection.home()
        await home.auth.verify_email(token)

    async def resend_verification(self, email: str) -> None:
        """Mail a new verification link to `email` if an account has it unverified.

        Example:
            await dominus.portal.resend_verification("new@example.com")
        """
        home = await self._dominus.connection.home()
        await home.auth.resend_verification(email)
