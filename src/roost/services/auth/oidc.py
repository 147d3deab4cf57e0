"""Sign-in with an outside provider: the OAuth2 authorization code flow with PKCE, `state` and
(OpenID Connect) `nonce`, the protocol's pieces from authlib and joserfc.

1. `auth.provider_url(provider, redirect_to)` (public) answers the provider's authorization
   URL. The state, nonce and PKCE verifier stay on the server, stored by the state's hash for
   ten minutes; `redirect_to` must be in the server's `auth_redirect_urls`.
2. The provider sends the browser back to `GET /api/v1/auth/providers/<tenant>/callback`
   (`server/signin.py`), which calls `finish`: the state is spent (once), the code is traded
   at the provider with the verifier, the ID token's signature, issuer, audience, expiry and
   nonce are checked, and the identity is linked to a user. The browser then goes on to
   `redirect_to?roost_code=...` (or `?roost_error=<code>`).
3. `auth.exchange_provider_code(code)` (public) trades that one-time code, within a minute
   and once, for a session (access and refresh tokens).

Why a one-time code rather than tokens in the redirect: a URL is kept in browser history,
server logs and Referer headers; the code is worth nothing once spent or a minute old, and
the tokens travel only in the body of the app's own call.

Accounts link by verified email only: an identity seen before signs its user in; else a user
with the same email is linked only if the provider says the address is verified, and an
unverified one is refused (it would otherwise take that account over); else a new user is
made (where sign-up is allowed), keeping an unverified address off the account.

An account whose own address was never verified is not linked either, even by a provider that
verified it (`account_email_unverified`): whoever registered it never proved the mailbox, so it
may be an attacker's account made ahead with the victim's address (pre-hijacking), whose
password would still open it once the victim signs in through the provider. The owner signs
in (or resets the password by mail, which proves the mailbox), verifies, then links. Refusing
is safer than taking the account over: whatever the registrant left in it (API keys, a second
factor, data, other identities) would stay.
"""

from __future__ import annotations

import base64
import re
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import msgspec
from sqlalchemy import func, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from roost.backends.sql.tables import auth_handoffs, user_identities, users
from roost.errors import (
    APIError,
    AuthenticationError,
    AuthorizationError,
    ServiceUnavailableError,
    ValidationError,
)
from roost.services import accounts
from roost.services.auth import challenges
from roost.services.auth.audit import audit
from roost.services.auth.providers import (
    Provider,
    allow_list,
    callback_url,
    check_url,
    load_provider,
)
from roost.services.auth.sessions import _open_session
from roost.services.context import Context
from roost.services.outbound import AllowList, OutboundRefused, pinned_client
from roost.services.registry import operation
from roost.services.security import take_or_refuse, token_hash
from roost.wire.auth import RegisterRequest, TokenPair
from roost.wire.oidc import ProviderCodeRequest, ProviderUrl, ProviderUrlRequest

if TYPE_CHECKING:  # httpx, authlib and joserfc load on a provider sign-in's first use
    import httpx
    from sqlalchemy.ext.asyncio import AsyncConnection

_STATE_TTL = 600  # the user's time at the provider
_CODE_TTL = 60  # the app's time to exchange the one-time code
_LEEWAY = 60  # clock skew allowed on the ID token's times
_TIMEOUT = 10.0
_MAX_ANSWER = 1024 * 1024  # a provider's JSON answer, at most
_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
_USERNAME_CHARS = re.compile(r"[^A-Za-z0-9_.+-]")


class Endpoints(msgspec.Struct, frozen=True):
    authorize: str
    token: str
    userinfo: str | None
    jwks: str | None
    issuer: str | None
    basic_auth: bool  # client_secret_basic; else the secret goes in the form (GitHub's way)


class Identity(msgspec.Struct, frozen=True):
    subject: str
    email: str
    email_verified: bool
    first_name: str
    last_name: str


@operation("auth.provider_url", access="public")
async def provider_url(ctx: Context, params: ProviderUrlRequest) -> ProviderUrl:
    """The URL to send the user to for signing in with `provider`; they come back to
    `redirect_to` with `roost_code` (exchange it with `auth.exchange_provider_code`) or
    `roost_error`."""
    check_redirect(ctx, params.redirect_to)
    callback = callback_url(ctx)
    if callback is None:
        raise ValidationError(
            "this server has no public_url setting, so providers cannot send users back",
            code="public_url_missing",
            details={"field": "provider"},
        )
    settings = ctx.platform.settings
    await take_or_refuse(
        ctx.platform.limiter,
        [(f"provider-url-from:{ctx.client_address}", settings.provider_sign_ins_per_client)],
        _STATE_TTL,
        "provider sign-ins",
        secrets.token_hex(8),
    )
    provider = await load_provider(ctx, params.provider)
    endpoints = await _endpoints(provider, allow_list(settings))
    from authlib.common.security import generate_token
    from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    state, nonce, verifier = generate_token(43), generate_token(43), generate_token(64)
    flow = {
        "provider": provider.name,
        "redirect_to": params.redirect_to,
        "verifier": verifier,
        "nonce": nonce,
    }
    await _put_handoff(ctx, state, "state", flow, _STATE_TTL)
    extra = {"nonce": nonce} if provider.kind == "oidc" else {}
    url = prepare_grant_uri(
        endpoints.authorize,
        provider.client_id,
        "code",
        redirect_uri=callback,
        scope=provider.scopes or None,
        state=state,
        code_challenge=create_s256_code_challenge(verifier),
        code_challenge_method="S256",
        **extra,
    )
    return ProviderUrl(url=str(url), expires_in=_STATE_TTL)


@operation("auth.exchange_provider_code", access="public")
async def exchange_provider_code(ctx: Context, params: ProviderCodeRequest) -> TokenPair:
    """Trade the one-time `roost_code` a provider sign-in came back with for a session;
    each code works once, within a minute."""
    async with ctx.platform.db.write(ctx.tenant) as conn:  # the code is spent whatever follows
        handed = await _take_handoff(ctx, conn, params.code, "code")
        user = await accounts.live_user(conn, handed["user_id"])
    if not user["is_active"]:
        raise AuthenticationError("this user is disabled", code="invalid_credentials")
    # a provider is one factor, as a password is: a user with a second factor (or a role that
    # requires one) gets a challenge here too
    await challenges.pass_gate(ctx, user, session_token=False, via="provider")
    async with ctx.platform.db.write(ctx.tenant) as conn:
        await conn.execute(
            users.update().where(users.c.id == user["id"]).values(last_login=ctx.now())
        )
        return await _open_session(ctx, conn, user["id"], with_session_token=False)


async def finish(ctx: Context, state: str, code: str | None, error: str | None) -> str:
    """The provider's callback: where to send the browser next. An unknown, used or expired
    `state` is an AuthenticationError (there is no trusted place to send the browser to);
    every later failure goes back to `redirect_to` as `roost_error`."""
    try:
        async with ctx.platform.db.write(ctx.tenant) as conn:
            flow = await _take_handoff(ctx, conn, state, "state")
    except AuthenticationError:
        await audit(ctx, "warn", "provider sign-in callback refused: invalid_state", {})
        raise
    redirect_to = str(flow["redirect_to"])
    name = str(flow["provider"])
    try:
        if error is not None:
            raise AuthenticationError(
                f"the provider answered {error[:100]!r}", code="provider_refused"
            )
        if not code:
            raise ValidationError("the provider sent no code", details={"field": "code"})
        provider = await load_provider(ctx, name)
        identity = await _identify(ctx, provider, code, flow)
        user = await _link(ctx, provider, identity)
    except APIError as exc:
        await audit(ctx, "warn", f"sign-in with {name!r} refused: {exc.code}", {"provider": name})
        return with_query(redirect_to, roost_error=exc.code)
    from authlib.common.security import generate_token

    one_time = generate_token(48)
    await _put_handoff(ctx, one_time, "code", {"user_id": user["id"]}, _CODE_TTL)
    await audit(
        ctx,
        "notice",
        f"signed in with provider {name!r}",
        {"provider": name, "user_id": user["id"]},
        username=user["username"],
    )
    return with_query(redirect_to, roost_code=one_time)


# -- the redirect target ------------------------------------------------------------------


def check_redirect(ctx: Context, url: str) -> None:
    """`url` must be one of `auth_redirect_urls`, or extend one by a path below it (an entry
    ending in /), a query or a fragment: same scheme, host and port."""
    target = urlsplit(url)
    if "\\" in url or target.username is not None or target.password is not None:
        raise _bad_redirect()
    for entry in ctx.platform.settings.auth_redirect_urls:
        allowed = urlsplit(entry)
        same_origin = (target.scheme, target.netloc.lower()) == (
            allowed.scheme,
            allowed.netloc.lower(),
        )
        base = allowed.path or "/"
        path = target.path or "/"
        if same_origin and (path == base or (base.endswith("/") and path.startswith(base))):
            return
    raise _bad_redirect()


def _bad_redirect() -> ValidationError:
    return ValidationError(
        "redirect_to is not among this server's auth_redirect_urls",
        code="redirect_not_allowed",
        details={"field": "redirect_to"},
    )


def with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


# -- talking to the provider --------------------------------------------------------------


async def _endpoints(provider: Provider, allow: AllowList) -> Endpoints:
    if provider.kind != "oidc":
        assert provider.authorize_url
        assert provider.token_url
        return Endpoints(
            provider.authorize_url,
            provider.token_url,
            provider.userinfo_url,
            None,
            None,
            basic_auth=False,
        )
    assert provider.issuer is not None
    found = await _get_json(allow, f"{provider.issuer}/.well-known/openid-configuration")
    if str(found.get("issuer", "")).rstrip("/") != provider.issuer:
        raise _provider_error("its discovery document names another issuer")
    named: dict[str, str] = {}
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
        value = found.get(key)
        if isinstance(value, str):
            check_url(value, key, allow)
            named[key] = value
        elif key != "userinfo_endpoint":
            raise _provider_error(f"its discovery document has no {key}")
    methods = found.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    return Endpoints(
        named["authorization_endpoint"],
        named["token_endpoint"],
        named.get("userinfo_endpoint"),
        named["jwks_uri"],
        str(found["issuer"]),
        basic_auth="client_secret_basic" in methods,
    )


async def _identify(ctx: Context, provider: Provider, code: str, flow: dict[str, Any]) -> Identity:
    allow = allow_list(ctx.platform.settings)
    endpoints = await _endpoints(provider, allow)
    callback = callback_url(ctx)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": callback or "",
        "code_verifier": str(flow["verifier"]),
        "client_id": provider.client_id,
    }
    headers = {"Accept": "application/json"}
    if endpoints.basic_auth:  # RFC 6749 2.3.1: each part form-encoded before base64
        pair = f"{quote(provider.client_id, safe='')}:{quote(provider.client_secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    else:
        form["client_secret"] = provider.client_secret
    tokens = await _post_form(allow, endpoints.token, form, headers)
    access = tokens.get("access_token")
    if not isinstance(access, str) or not access:
        raise _provider_error("its token answer has no access_token")
    if provider.kind == "oidc":
        claims = await _id_token_claims(ctx, allow, provider, endpoints, tokens, str(flow["nonce"]))
        if "email" not in claims and endpoints.userinfo:
            info = await _get_json(allow, endpoints.userinfo, access)
            if str(info.get("sub")) != str(claims["sub"]):
                raise _provider_error("its user-info names another subject")
            claims = {**info, **claims}
    else:
        assert endpoints.userinfo is not None
        claims = await _get_json(allow, endpoints.userinfo, access)
    return _identity_of(claims)


async def _id_token_claims(
    ctx: Context,
    allow: AllowList,
    provider: Provider,
    endpoints: Endpoints,
    tokens: dict[str, Any],
    nonce: str,
) -> dict[str, Any]:
    id_token = tokens.get("id_token")
    if not isinstance(id_token, str):
        raise _provider_error("its token answer has no id_token")
    assert endpoints.jwks is not None
    from authlib.oidc.core import CodeIDToken
    from joserfc import jwt
    from joserfc.errors import ClaimError, JoseError
    from joserfc.jwk import KeySet

    try:
        keys = KeySet.import_key_set(await _get_json(allow, endpoints.jwks))  # type: ignore[arg-type]
        decoded = jwt.decode(id_token, keys, algorithms=_ALGORITHMS)
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            options={
                "iss": {"essential": True, "value": str(endpoints.issuer)},
                "aud": {"essential": True, "value": provider.client_id},
            },
            params={
                "nonce": nonce,
                "client_id": provider.client_id,
                "access_token": tokens.get("access_token"),
            },
        )
        claims.validate(now=int(ctx.platform.clock.time()), leeway=_LEEWAY)
    except ClaimError as exc:
        raise AuthenticationError(
            f"the ID token's {exc.claim} claim is wrong or missing ({exc.error})",
            code="invalid_id_token",
            details={"claim": exc.claim},
        ) from None
    except (JoseError, ValueError) as exc:
        raise AuthenticationError(
            f"the ID token does not verify ({type(exc).__name__})", code="invalid_id_token"
        ) from None
    return dict(claims)


def _identity_of(claims: dict[str, Any]) -> Identity:
    subject = claims.get("sub", claims.get("id"))
    if subject is None or str(subject) == "" or len(str(subject)) > 255:
        raise _provider_error("it named no subject (sub or id) for the user")
    email = claims.get("email")
    email = email.strip() if isinstance(email, str) and "@" in email else ""
    if not accounts.plain_email(email):  # a look-alike is no address to link by
        email = ""
    verified = claims.get("email_verified", claims.get("verified_email"))
    return Identity(
        subject=str(subject),
        email=email[:254],
        email_verified=bool(email) and verified in (True, "true"),
        first_name=str(claims.get("given_name") or "")[:150],
        last_name=str(claims.get("family_name") or "")[:150],
    )


async def _post_form(
    allow: AllowList, url: str, form: dict[str, str], headers: dict[str, str]
) -> dict[str, Any]:
    import httpx

    try:
        async with await _client(allow, url) as http:
            response = await http.post(url, data=form, headers=headers)
    except httpx.HTTPError as exc:
        raise _unreachable(exc) from None
    answer = _json_of(response)
    if "error" in answer or response.status_code >= 400:
        refusal = str(answer.get("error", response.status_code))[:100]
        raise AuthenticationError(
            f"the provider refused the code: {refusal}", code="provider_refused"
        )
    return answer


async def _get_json(allow: AllowList, url: str, bearer: str | None = None) -> dict[str, Any]:
    import httpx

    headers = {"Accept": "application/json"}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    try:
        async with await _client(allow, url) as http:
            response = await http.get(url, headers=headers)
    except httpx.HTTPError as exc:
        raise _unreachable(exc) from None
    if response.status_code != 200:
        raise _provider_error(f"{urlsplit(url).path} answered {response.status_code}")
    return _json_of(response)


async def _client(allow: AllowList, url: str) -> httpx.AsyncClient:
    """A client for `url` that connects only to the addresses its host resolves to now, each
    checked against `allow`: a provider's name re-pointed at the server's own network (DNS
    rebinding included) is refused, not called."""
    try:
        addresses = await allow.resolve(url)
    except OutboundRefused as exc:
        raise _provider_error(f"its URL {urlsplit(url).path or '/'} {exc.message}") from None
    return pinned_client(addresses, timeout=_TIMEOUT)


def _json_of(response: httpx.Response) -> dict[str, Any]:
    if len(response.content) > _MAX_ANSWER:
        raise _provider_error("its answer is larger than 1 MiB")
    try:
        answer = response.json()
    except ValueError:
        raise _provider_error("its answer is not JSON") from None
    if not isinstance(answer, dict):
        raise _provider_error("its answer is not a JSON object")
    return answer


def _provider_error(why: str) -> AuthenticationError:
    return AuthenticationError(f"the sign-in provider misbehaved: {why}", code="provider_error")


def _unreachable(exc: httpx.HTTPError) -> ServiceUnavailableError:
    return ServiceUnavailableError(
        f"the sign-in provider did not answer ({type(exc).__name__})", code="provider_unreachable"
    )


# -- accounts -----------------------------------------------------------------------------


async def _link(ctx: Context, provider: Provider, identity: Identity) -> RowMapping:
    """The user this identity signs in as: linked before, or by a verified email, or new."""
    async with ctx.platform.db.write(ctx.tenant) as conn:
        user_id = await conn.scalar(
            select(user_identities.c.user_id).where(
                user_identities.c.provider == provider.name,
                user_identities.c.subject == identity.subject,
            )
        )
        if user_id is not None:
            user = await accounts.live_user(conn, user_id)
        else:
            user = await _user_for_new_identity(ctx, conn, provider, identity)
            try:
                async with conn.begin_nested():
                    await conn.execute(
                        user_identities.insert().values(
                            provider=provider.name,
                            subject=identity.subject,
                            user_id=user["id"],
                            email=identity.email,
                            created_at=ctx.now(),
                        )
                    )
            except IntegrityError:  # the same identity's other sign-in got there first
                raise AuthenticationError(
                    "this identity is being linked by another sign-in; try again",
                    code="provider_refused",
                ) from None
        if not user["is_active"]:
            raise AuthenticationError("this user is disabled", code="invalid_credentials")
        return user


async def _user_for_new_identity(
    ctx: Context, conn: AsyncConnection, provider: Provider, identity: Identity
) -> RowMapping:
    owner = await accounts.find_by_email(conn, identity.email)
    if owner is not None:
        if not identity.email_verified:
            raise AuthenticationError(
                "an account has this email, and the provider does not say the address is "
                "verified: sign in to that account and link the provider from there",
                code="email_not_verified",
            )
        if owner["email_verified_at"] is None:  # see the module's docstring: pre-hijacking
            raise AuthenticationError(
                "an account has this email but has not verified it: sign in to that account "
                "(or reset its password by mail) and verify the address first",
                code="account_email_unverified",
            )
        return owner
    if not ctx.platform.settings.allow_signup:
        raise AuthorizationError(
            "sign-up is disabled on this server; ask an admin for an account",
            code="signup_disabled",
        )
    request = RegisterRequest(
        username=await _free_username(conn, provider, identity),
        # nobody knows it: the user signs in with the provider, or resets it by mail
        password=secrets.token_urlsafe(32),
        email=identity.email if identity.email_verified else "",
        first_name=identity.first_name,
        last_name=identity.last_name,
    )
    user = await accounts.create_user(conn, ctx.platform.passwords, request, role_names=["member"])
    if identity.email_verified:
        await conn.execute(
            users.update().where(users.c.id == user["id"]).values(email_verified_at=ctx.now())
        )
    return await accounts.live_user(conn, user["id"])


async def _free_username(conn: AsyncConnection, provider: Provider, identity: Identity) -> str:
    base = _USERNAME_CHARS.sub("", identity.email.split("@")[0])[:100] or provider.name
    name = base
    while await conn.scalar(
        select(users.c.id).where(func.lower(users.c.username) == name.lower()).limit(1)
    ):
        name = f"{base}-{secrets.token_hex(3)}"
    return name


# -- handoffs: the state while at the provider, then the one-time code ----------------------


async def _put_handoff(ctx: Context, value: str, kind: str, data: dict[str, Any], ttl: int) -> None:
    now = ctx.now()
    async with ctx.platform.db.write(ctx.tenant) as conn:
        await conn.execute(auth_handoffs.delete().where(auth_handoffs.c.expires_at < now))
        await conn.execute(
            auth_handoffs.insert().values(
                id_hash=token_hash(value),
                kind=kind,
                data=data,
                expires_at=now + timedelta(seconds=ttl),
            )
        )


async def _take_handoff(
    ctx: Context, conn: AsyncConnection, value: str, kind: str
) -> dict[str, Any]:
    """The handoff's data, spent: a second take of the same value finds nothing."""
    what = "state" if kind == "state" else "sign-in code"
    refused = AuthenticationError(
        f"unknown, used or expired {what}", code=f"invalid_{kind}", details={"field": kind}
    )
    where = (auth_handoffs.c.id_hash == token_hash(value)) & (auth_handoffs.c.kind == kind)
    row = (
        await conn.execute(select(auth_handoffs.c.data, auth_handoffs.c.expires_at).where(where))
    ).first()
    if row is None:
        raise refused
    # of two concurrent takes, one deletes the row
    if (await conn.execute(auth_handoffs.delete().where(where))).rowcount != 1:
        raise refused
    if row.expires_at <= ctx.now():
        raise refused
    return dict(row.data)
