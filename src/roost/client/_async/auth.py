"""`client.auth`: sign-in, tokens and the signed-in user's own account."""

from __future__ import annotations

import contextlib
from functools import cached_property
from typing import TYPE_CHECKING, Any

import msgspec

from roost.client._async.passkeys import AsyncPasskeys
from roost.client._async.providers import AsyncProviders
from roost.client._core.credentials import Credential, TokenSession
from roost.client._core.namespace import Namespace, user_ref
from roost.client._core.results import PageAccess, VerifyResult, decode
from roost.errors import AuthenticationError

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient


class AsyncAuth(Namespace):
    """Signing in returns a new client; the client you call it on is left as it was."""

    _client: AsyncClient

    async def sign_in_with_password(self, username: str, password: str) -> AsyncClient:
        """Sign in and return a client that sends the access token and refreshes it itself.
        A user with two-factor sign-in gets `SecondFactorRequired` (see `verify_totp`).

        Example:
            admin = await client.auth.sign_in_with_password("admin", "secret-password")
        """
        tokens = await self.login(username, password)
        return self._client._derive(session=TokenSession(tokens))

    async def sign_in_with_token(self, token: str, token_type: str = "jwt") -> AsyncClient:
        """Return a client that sends an existing credential: a `"jwt"` access token (as
        `Authorization: Bearer`), an `"api_key"` (`Authorization: Api-Key`) or a
        `"session_token"` (`X-Session-Token`). The server checks it on the first call.

        Example:
            service = await client.auth.sign_in_with_token(key, token_type="api_key")
        """
        credential = Credential(token, token_type)  # type: ignore[arg-type]
        return self._client._derive(credential=credential)

    async def sign_out(self) -> AsyncClient:
        """Revoke this client's session on the server and return an anonymous client.

        Example:
            anonymous = await signed_in.auth.sign_out()
        """
        if self._client.is_authenticated:
            # Already signed out or expired: the goal is reached.
            with contextlib.suppress(AuthenticationError):
                await self._client.call("auth.logout")
        return self._client._derive()

    async def verify_totp(
        self, challenge: str, code: str, *, session_token: bool = False
    ) -> AsyncClient:
        """Finish a sign-in that raised `SecondFactorRequired`: its `challenge` and a code from
        the authenticator app (or a recovery code) return a signed-in client. For a
        `"totp_enrolment"` challenge, call `totp_enrol(challenge=...)` first: this first code
        also turns the new factor on. The challenge works once, for a few minutes.

        Example:
            try:
                user = await client.auth.sign_in_with_password("alice", "secret-password")
            except SecondFactorRequired as needed:
                user = await client.auth.verify_totp(needed.challenge, "123456")
        """
        params = {"challenge": challenge, "code": code, "session_token": session_token}
        tokens = await self._client.call("auth.verify_totp", params, authenticated=False)
        return self._client._derive(session=TokenSession(tokens))

    async def totp_enrol(self, *, challenge: str | None = None) -> dict[str, Any]:
        """Start two-factor sign-in: `{"secret", "uri", "recovery_codes"}`. Show `uri` as a
        QR code for the authenticator app, and the recovery codes to the user, once: they are
        not shown again. Signed in, confirm with `totp_confirm(code)`; with a
        `"totp_enrolment"` challenge (a tenant that requires it), with `verify_totp`.

        Example:
            enrolment = await signed_in.auth.totp_enrol()
            await signed_in.auth.totp_confirm(code_from_the_app)
        """
        params = {} if challenge is None else {"challenge": challenge}
        authenticated = challenge is None
        result: dict[str, Any] = await self._client.call(
            "auth.totp_enrol", params, authenticated=authenticated
        )
        return result

    async def totp_confirm(self, code: str) -> None:
        """Turn two-factor sign-in on with a first code from the authenticator app.

        Example:
            await signed_in.auth.totp_confirm("123456")
        """
        await self._client.call("auth.totp_confirm", {"code": code})

    async def totp_status(self) -> dict[str, Any]:
        """`{"enabled", "pending", "required", "recovery_codes_left"}` for the signed-in user.

        Example:
            if not (await signed_in.auth.totp_status())["enabled"]: ...
        """
        result: dict[str, Any] = await self._client.call("auth.totp_status", idempotent=True)
        return result

    async def totp_disable(self, *, code: str | None = None, password: str | None = None) -> None:
        """Turn two-factor sign-in off, proven with a code (or recovery code) or the password.
        Refused while the tenant requires it for one of your roles.

        Example:
            await signed_in.auth.totp_disable(code="123456")
        """
        params = {"code": code} if code is not None else {"password": password}
        await self._client.call("auth.totp_disable", params)

    async def send_magic_link(self, email: str, redirect_to: str | None = None) -> None:
        """Mail a one-time sign-in link to the account with `email`, if there is one (the
        answer is the same either way). The link opens `redirect_to` with `token=...` added;
        `redirect_to` must start with one of the tenant's allowed URLs (site setting
        `auth_redirect_urls`). That page signs in with `sign_in_with_magic_link(token)`.

        Example:
            await client.auth.send_magic_link("bob@example.com", "https://app.example.com/in")
        """
        params: dict[str, Any] = {"email": email}
        if redirect_to is not None:
            params["redirect_to"] = redirect_to
        await self._client.call("auth.send_magic_link", params, authenticated=False)

    async def sign_in_with_magic_link(
        self, token: str, *, session_token: bool = False
    ) -> AsyncClient:
        """Trade the token of a magic link for a signed-in client (the link works once). A
        user with two-factor sign-in gets `SecondFactorRequired` (see `verify_totp`).

        Example:
            user = await client.auth.sign_in_with_magic_link(request.query_params["token"])
        """
        params = {"token": token, "session_token": session_token}
        tokens = await self._client.call(
            "auth.sign_in_with_magic_link", params, authenticated=False
        )
        return self._client._derive(session=TokenSession(tokens))

    async def send_otp(self, email: str) -> None:
        """Mail a six-digit sign-in code to the account with `email`, if there is one (the
        answer is the same either way); older codes stop working.

        Example:
            await client.auth.send_otp("bob@example.com")
        """
        await self._client.call("auth.send_otp", {"email": email}, authenticated=False)

    async def verify_otp(
        self, email: str, code: str, *, session_token: bool = False
    ) -> AsyncClient:
        """Trade a mailed six-digit code for a signed-in client (the code works once). A user
        with two-factor sign-in gets `SecondFactorRequired` (see `verify_totp`).

        Example:
            user = await client.auth.verify_otp("bob@example.com", "123456")
        """
        params = {"email": email, "code": code, "session_token": session_token}
        tokens = await self._client.call("auth.verify_otp", params, authenticated=False)
        return self._client._derive(session=TokenSession(tokens))

    # -- anonymous users --------------------------------------------------------------------

    async def sign_in_anonymously(self, *, session_token: bool = False) -> AsyncClient:
        """A client signed in as a new anonymous user (where the tenant's site setting
        `auth_anonymous_sign_in` is true): it may do what the tenant's `anonymous` role
        allows, never administration. Keep its data by `upgrade_anonymous` later.

        Example:
            guest = await client.auth.sign_in_anonymously()
        """
        params = {"session_token": session_token}
        tokens = await self._client.call("auth.sign_in_anonymously", params, authenticated=False)
        return self._client._derive(session=TokenSession(tokens))

    async def upgrade_anonymous(
        self, email: str, password: str, *, username: str | None = None
    ) -> dict[str, Any]:
        """Make the signed-in anonymous user a full account (the same id, so the same data)
        with this email and password, and `username` if given; a verification link is
        mailed. ConflictError if another account has the email or username.

        Example:
            me = await guest.auth.upgrade_anonymous("ada@example.com", "a-long-password")
        """
        params: dict[str, Any] = {"email": email, "password": password}
        if username is not None:
            params["username"] = username
        result: dict[str, Any] = await self._client.call("auth.upgrade_anonymous", params)
        return result

    # -- passkeys (WebAuthn) -------------------------------------------------------------

    @cached_property
    def passkeys(self) -> AsyncPasskeys:
        """The signed-in user's passkeys: `registration_options`, `register`, `list`,
        `delete`."""
        return AsyncPasskeys(self._client)

    async def passkey_sign_in_options(self) -> dict[str, Any]:
        """`{"options", "expires_in"}` for signing in with a passkey: pass `options` to the
        browser's `navigator.credentials.get({publicKey: ...})`, then the credential's
        `toJSON()` to `sign_in_with_passkey`. No user name is asked: the user picks a passkey.

        Example:
            options = (await client.auth.passkey_sign_in_options())["options"]
        """
        result: dict[str, Any] = await self._client.call(
            "auth.passkey_sign_in_options", authenticated=False
        )
        return result

    async def sign_in_with_passkey(
        self, credential: dict[str, Any], *, session_token: bool = False
    ) -> AsyncClient:
        """Trade the browser's answer to `passkey_sign_in_options` for a signed-in client.
        A passkey with user verification is two factors in one: no TOTP code is asked.

        Example:
            user = await client.auth.sign_in_with_passkey(credential_json)
        """
        params = {"credential": credential, "session_token": session_token}
        tokens = await self._client.call("auth.sign_in_with_passkey", params, authenticated=False)
        return self._client._derive(session=TokenSession(tokens))

    async def switch_tenant(self, tenant: str, *, session_token: bool = False) -> AsyncClient:
        """A client signed in to another tenant where you are a member, as your account there
        (with its roles there), without signing in again; this client stays as it was. Call
        it on a client of your home account (the one you accepted the invitation with): any
        other is refused with `AuthorizationError` (code `not_a_member`), as is a tenant
        where you have no membership. A second factor the other tenant asks of that account
        raises `SecondFactorRequired`: finish with `verify_totp` on a client of that tenant.

        Example:
            acme = await signed_in.auth.switch_tenant("acme")
        """
        params = {"tenant": tenant, "session_token": session_token}
        tokens = await self._client.call("auth.switch_tenant", params)
        there = msgspec.structs.replace(self._client.config, tenant=tenant)
        return self._client._derive(session=TokenSession(tokens), config=there)

    async def accept_invitation(self, code: str) -> dict[str, Any]:
        """Take an invitation code another tenant's admin gave you (`users.invite_member`),
        signed in with your home account: that tenant's account becomes a membership of
        yours, `{"tenant", "display_name", "home", "username", "roles"}`. The code works once.

        Example:
            membership = await signed_in.auth.accept_invitation(code)
        """
        result: dict[str, Any] = await self._client.call("auth.accept_invitation", {"code": code})
        return result

    async def leave_tenant(self, tenant: str) -> None:
        """Give up your membership in another tenant (from your home account); your account
        there is signed out everywhere. NotFoundError if you have none there.

        Example:
            await signed_in.auth.leave_tenant("acme")
        """
        await self._client.call("auth.leave_tenant", {"tenant": tenant}, idempotent=True)

    signInWithPassword = sign_in_with_password
    signInWithToken = sign_in_with_token
    signOut = sign_out
    verifyTotp = verify_totp
    sendMagicLink = send_magic_link
    signInWithMagicLink = sign_in_with_magic_link
    sendOtp = send_otp
    verifyOtp = verify_otp
    signInWithPasskey = sign_in_with_passkey
    signInAnonymously = sign_in_anonymously

    async def login(
        self, username: str, password: str, *, session_token: bool = False
    ) -> dict[str, Any]:
        """Exchange a username (or email) and password for `{"access", "refresh", ...}`.
        With `session_token=True` the answer also holds an opaque `session_token`.

        Example:
            tokens = await client.auth.login("alice", "secret-password")
        """
        params = {"username": username, "password": password, "session_token": session_token}
        result: dict[str, Any] = await self._client.call("auth.login", params, authenticated=False)
        return result

    async def refresh_token(self, refresh: str) -> dict[str, Any]:
        """Trade a refresh token for a new pair. Each refresh token works once; using one
        twice revokes its whole session.

        Example:
            tokens = await client.auth.refresh_token(tokens["refresh"])
        """
        result: dict[str, Any] = await self._client.call(
            "auth.refresh", {"refresh": refresh}, authenticated=False
        )
        return result

    async def verify_token(self, token: str, token_type: str = "jwt") -> bool:
        """Whether a token is valid now.

        Example:
            assert await client.auth.verify_token(tokens["access"])
        """
        result = await self._client.call(
            "auth.verify",
            {"token": token, "token_type": token_type},
            idempotent=True,
            authenticated=False,
        )
        return bool(result["valid"])

    async def get_current_user(self) -> dict[str, Any]:
        """The signed-in user (for an API key: its owner).

        Example:
            me = await signed_in.auth.get_current_user()
        """
        result: dict[str, Any] = await self._client.call("auth.me", idempotent=True)
        return result

    async def validate_jwt(self, token: str) -> VerifyResult:
        """Whether an access token is valid now: `VerifyResult(valid, user_id, tenant,
        expires_at)`, or `valid=False` with the `reason`. It is true only when valid.

        Example:
            claims = await client.auth.validate_jwt(minted["access"])
            if claims:
                print(claims.user_id, claims.expires_at)
        """
        answer = await self._client.call(
            "auth.verify",
            {"token": token, "token_type": "jwt"},
            idempotent=True,
            authenticated=False,
        )
        return decode(answer, VerifyResult)

    async def mint_jwt(
        self, username: str | None = None, expires_in: int = 900, *, user_id: str | None = None
    ) -> dict[str, Any]:
        """An access token for another user (named by username or by `user_id`), `{"access",
        "expires_in", "session_id", "user_id"}`, for a service acting on their behalf (scope
        `auth:mint`; only for users whose scopes you hold). No refresh token: it simply ends.

        Example:
            token = (await admin.auth.mint_jwt("bob", expires_in=300))["access"]
        """
        params = {**user_ref(username, user_id), "expires_in": expires_in}
        result: dict[str, Any] = await self._client.call("auth.mint_jwt", params)
        return result

    async def get_profile(self) -> dict[str, Any]:
        """Your own account (the same as `get_current_user`).

        Example:
            name = (await signed_in.auth.get_profile())["first_name"]
        """
        return await self.get_current_user()

    async def update_profile(
        self,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        email: str | None = None,
    ) -> dict[str, Any]:
        """Change your names or email; a new email is unverified until you follow the link
        mailed to it.

        Example:
            await signed_in.auth.update_profile(first_name="Ann")
        """
        fields = {"first_name": first_name, "last_name": last_name, "email": email}
        params = {name: value for name, value in fields.items() if value is not None}
        result: dict[str, Any] = await self._client.call(
            "auth.update_profile", params, idempotent=True
        )
        return result

    async def get_preferences(self) -> dict[str, Any]:
        """Your preferences, a JSON object (empty until you set some).

        Example:
            theme = (await signed_in.auth.get_preferences()).get("theme", "light")
        """
        result: dict[str, Any] = await self._client.call("auth.get_preferences", idempotent=True)
        return result

    async def update_preferences(
        self, preferences: dict[str, Any], *, replace: bool = False
    ) -> dict[str, Any]:
        """Merge keys into your preferences (`None` removes a key), or with `replace` set them
        as given; returns them all.

        Example:
            await signed_in.auth.update_preferences({"theme": "dark"})
        """
        params = {"preferences": preferences, "replace": replace}
        result: dict[str, Any] = await self._client.call(
            "auth.update_preferences", params, idempotent=True
        )
        return result

    async def get_navigation(self) -> list[dict[str, Any]]:
        """The tree of pages you may open: `[{"path", "title", "children": [...]}]`.

        Example:
            menu = await signed_in.auth.get_navigation()
        """
        result: list[dict[str, Any]] = await self._client.call(
            "auth.get_navigation", idempotent=True
        )
        return result

    async def check_page_access(self, path: str) -> PageAccess:
        """Whether you may open a page: `PageAccess(path, allowed, missing_scopes)`, true
        only when allowed. NotFoundError if there is no such page.

        Example:
            if not await signed_in.auth.check_page_access("/admin"): ...
        """
        answer = await self._client.call("auth.check_page_access", {"path": path}, idempotent=True)
        return decode(answer, PageAccess)

    async def whoami(self) -> dict[str, Any]:
        """What the server knows of this client's credential: `kind` ("user" or "api_key"),
        `tenant`, `user_id`, `username`, `scopes`. Cheap: no database read on the server.

        Example:
            assert (await service.auth.whoami())["kind"] == "api_key"
        """
        result: dict[str, Any] = await self._client.call("auth.whoami", idempotent=True)
        return result

    async def list_sessions(self) -> list[dict[str, Any]]:
        """The signed-in user's live sessions; `current` marks this client's.

        Example:
            others = [s for s in await signed_in.auth.list_sessions() if not s["current"]]
        """
        result: list[dict[str, Any]] = await self._client.call(
            "auth.list_sessions", idempotent=True
        )
        return result

    async def revoke_session(self, session_id: str) -> dict[str, Any]:
        """Sign out one session of the signed-in user; its tokens stop working at once.

        Example:
            await signed_in.auth.revoke_session(others[0]["id"])
        """
        result: dict[str, Any] = await self._client.call("auth.revoke_session", {"id": session_id})
        return result

    async def revoke_all_sessions(self) -> dict[str, Any]:
        """Sign out every session of the signed-in user, this client's included.

        Example:
            await signed_in.auth.revoke_all_sessions()
        """
        result: dict[str, Any] = await self._client.call("auth.revoke_all_sessions")
        return result

    async def register(
        self,
        username: str,
        password: str,
        *,
        email: str = "",
        first_name: str = "",
        last_name: str = "",
        confirm_password: str | None = None,
    ) -> dict[str, Any]:
        """Create an account (when the server allows sign-up) and return it.

        Example:
            user = await client.auth.register("bob", "a-long-password", email="bob@example.com")
        """
        params: dict[str, Any] = {
            "username": username,
            "password": password,
            "email": email,
            "first_name": first_name,
            "last_name": last_name,
        }
        if confirm_password is not None:
            params["confirm_password"] = confirm_password
        result: dict[str, Any] = await self._client.call(
            "auth.register", params, authenticated=False
        )
        return result

    async def verify_email(self, token: str) -> None:
        """Confirm an email address with the token from a verification mail.

        Example:
            await client.auth.verify_email(token_from_the_link)
        """
        await self._client.call("auth.verify_email", {"token": token}, authenticated=False)

    async def resend_verification(self, email: str) -> None:
        """Mail a new verification link to `email` if an account has it unverified (the
        answer is the same whether or not one does).

        Example:
            await client.auth.resend_verification("bob@example.com")
        """
        await self._client.call("auth.resend_verification", {"email": email}, authenticated=False)

    async def request_password_reset(self, email: str) -> None:
        """Mail a password reset link to the account with `email`, if there is one (the answer
        is the same either way).

        Example:
            await client.auth.request_password_reset("bob@example.com")
        """
        await self._client.call(
            "auth.request_password_reset", {"email": email}, authenticated=False
        )

    async def confirm_password_reset(self, token: str, new_password: str) -> None:
        """Set a new password with the token from a reset mail; every session of the account
        is signed out.

        Example:
            await client.auth.confirm_password_reset(token_from_the_link, "a-new-long-password")
        """
        params = {"token": token, "new_password": new_password}
        await self._client.call("auth.confirm_password_reset", params, authenticated=False)

    async def change_password(self, old_password: str, new_password: str) -> dict[str, Any]:
        """Change the signed-in user's password; their other sessions are signed out.

        Example:
            await signed_in.auth.change_password("old-password", "new-password")
        """
        result: dict[str, Any] = await self._client.call(
            "auth.change_password", {"old_password": old_password, "new_password": new_password}
        )
        return result

    # -- sign-in with an outside provider (OAuth2 / OpenID Connect) -------------------------

    @cached_property
    def providers(self) -> AsyncProviders:
        """The tenant's sign-in providers: `put`, `list`, `get`, `delete`."""
        return AsyncProviders(self._client)

    async def sign_in_with_provider_url(self, provider: str, redirect_to: str) -> str:
        """The URL to send the user's browser to for signing in with `provider`. The browser
        comes back to `redirect_to` (which must be in the server's `auth_redirect_urls`) with
        `?roost_code=...`: pass it to `sign_in_with_provider_code` within a minute. On a
        refusal it comes back with `?roost_error=<code>` instead.

        Example:
            url = await client.auth.sign_in_with_provider_url(
                "google", "https://app.example.com/signed-in"
            )
            # send the browser to `url`; then, on https://app.example.com/signed-in:
            user = await client.auth.sign_in_with_provider_code(request.query["roost_code"])
        """
        params = {"provider": provider, "redirect_to": redirect_to}
        result: dict[str, Any] = await self._client.call(
            "auth.provider_url", params, authenticated=False
        )
        return str(result["url"])

    async def exchange_provider_code(self, code: str) -> dict[str, Any]:
        """Trade the one-time `roost_code` of a provider sign-in for
        `{"access", "refresh", ...}`; each code works once.

        Example:
            tokens = await client.auth.exchange_provider_code(code)
        """
        result: dict[str, Any] = await self._client.call(
            "auth.exchange_provider_code", {"code": code}, authenticated=False
        )
        return result

    async def sign_in_with_provider_code(self, code: str) -> AsyncClient:
        """Trade the one-time `roost_code` of a provider sign-in for a client signed in as
        its user, which refreshes its access token itself.

        Example:
            user = await client.auth.sign_in_with_provider_code(code)
        """
        tokens = await self.exchange_provider_code(code)
        return self._client._derive(session=TokenSession(tokens))
