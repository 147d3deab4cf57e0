"""The sign-in providers of a tenant: `auth.put_provider` and the like (`client.auth.providers`).

A provider is an OpenID Connect issuer (its endpoints and keys found by discovery) or a plain
OAuth2 server with a user-info URL (GitHub style). Its client secret is sealed by the vault
(`vault.py`) under the tenant's data key and bound to the provider's row; no answer ever
carries it. The sign-in itself is `oidc.py`.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import msgspec
from sqlalchemy import select
from sqlalchemy.engine import RowMapping

from roost.backends.sql.tables import auth_providers, user_identities, utcnow
from roost.errors import NotFoundError, ServerError, ValidationError
from roost.services.auth.audit import audit
from roost.services.context import Context
from roost.services.outbound import AllowList, OutboundRefused
from roost.services.registry import operation
from roost.services.vault import secret_place
from roost.settings import Settings
from roost.wire.common import Done, Empty
from roost.wire.oidc import ProviderInfo, ProviderRef, ProviderSpec

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

_OIDC_SCOPES = ["openid", "email", "profile"]
_PLACE = "\0auth-provider"  # no app name has a NUL: a provider's secret is in a place of its own


class Provider(msgspec.Struct, frozen=True):
    """A provider with its client secret opened, for the sign-in only."""

    name: str
    kind: str
    client_id: str
    client_secret: str
    issuer: str | None
    authorize_url: str | None
    token_url: str | None
    userinfo_url: str | None
    scopes: list[str]


@operation("auth.put_provider", scope="auth_providers:write")
async def put_provider(ctx: Context, params: ProviderSpec) -> ProviderInfo:
    """Add a sign-in provider or replace its settings (and client secret)."""
    kind = _kind_of(params)
    for field in ("issuer", "authorize_url", "token_url", "userinfo_url"):
        if (url := getattr(params, field)) is not None:
            check_url(url, field, allow_list(ctx.platform.settings))
    data_key = await ctx.platform.vault.data_key(ctx.platform.db, ctx.tenant, create=True)
    assert data_key is not None
    now = utcnow()
    async with ctx.platform.db.write(ctx.tenant) as conn:
        found = (
            await conn.execute(
                select(auth_providers).where(auth_providers.c.name == params.name).with_for_update()
            )
        ).first()
        version = 1 if found is None else found.secret_version + 1
        values = {
            "kind": kind,
            "client_id": params.client_id,
            "secret_sealed": ctx.platform.vault.seal(
                data_key, _place(ctx.tenant, params.name, version), params.client_secret
            ),
            "secret_version": version,
            "issuer": params.issuer.rstrip("/") if params.issuer else None,
            "authorize_url": params.authorize_url,
            "token_url": params.token_url,
            "userinfo_url": params.userinfo_url,
            "scopes": params.scopes if params.scopes is not None else _default_scopes(kind),
            "updated_at": now,
        }
        dropped = 0
        if found is None:
            await conn.execute(
                auth_providers.insert().values(name=params.name, created_at=now, **values)
            )
        else:
            if any(values[field] != getattr(found, field) for field in _WHO_SAYS_WHO):
                dropped = await _drop_identities(conn, params.name)
            await conn.execute(
                auth_providers.update().where(auth_providers.c.name == params.name).values(**values)
            )
        row = await _row(conn, params.name)
    await audit(
        ctx,
        "notice",
        f"sign-in provider {params.name!r} set",
        {"provider": params.name, "identities_dropped": dropped},
    )
    return _info(ctx, row)


@operation("auth.list_providers", scope="auth_providers:read", read_only=True)
async def list_providers(ctx: Context, params: Empty) -> list[ProviderInfo]:
    """The tenant's sign-in providers by name, without their client secrets."""
    async with ctx.platform.db.read(ctx.tenant) as conn:
        rows = (
            (await conn.execute(select(auth_providers).order_by(auth_providers.c.name)))
            .mappings()
            .all()
        )
    return [_info(ctx, row) for row in rows]


@operation("auth.get_provider", scope="auth_providers:read", read_only=True)
async def get_provider(ctx: Context, params: ProviderRef) -> ProviderInfo:
    """One sign-in provider, without its client secret."""
    async with ctx.platform.db.read(ctx.tenant) as conn:
        return _info(ctx, await _row(conn, params.name))


@operation("auth.delete_provider", scope="auth_providers:write")
async def delete_provider(ctx: Context, params: ProviderRef) -> Done:
    """Remove a sign-in provider and the identities linked through it. Users who signed in
    with it keep their accounts."""
    async with ctx.platform.db.write(ctx.tenant) as conn:
        result = await conn.execute(
            auth_providers.delete().where(auth_providers.c.name == params.name)
        )
        if result.rowcount == 0:
            raise _not_found(params.name, "name")
        dropped = await _drop_identities(conn, params.name)
    await audit(
        ctx,
        "notice",
        f"sign-in provider {params.name!r} deleted",
        {"provider": params.name, "identities_dropped": dropped},
    )
    return Done(count=result.rowcount)


async def load_provider(ctx: Context, name: str) -> Provider:
    """The provider `name` of the caller's tenant, its client secret opened."""
    async with ctx.platform.db.read(ctx.tenant) as conn:
        row = await _row(conn, name, field="provider")
    data_key = await ctx.platform.vault.data_key(ctx.platform.db, ctx.tenant, create=False)
    if data_key is None:
        raise ServerError("this tenant has a provider but no data key", code="secret_unreadable")
    secret = ctx.platform.vault.open(
        data_key, _place(ctx.tenant, name, row["secret_version"]), bytes(row["secret_sealed"])
    )
    return Provider(
        name=row["name"],
        kind=row["kind"],
        client_id=row["client_id"],
        client_secret=secret,
        issuer=row["issuer"],
        authorize_url=row["authorize_url"],
        token_url=row["token_url"],
        userinfo_url=row["userinfo_url"],
        scopes=list(row["scopes"]),
    )


# What says who a subject is: identities are stored by (provider name, subject), and a subject
# is only unique at its issuer. A provider made again under the same name for another issuer
# (or its endpoints changed) would otherwise sign that issuer's subjects in as the users the
# old one linked; their identities go, and each links again by verified email.
_WHO_SAYS_WHO = ("kind", "issuer", "authorize_url", "token_url", "userinfo_url")


async def _drop_identities(conn: AsyncConnection, name: str) -> int:
    result = await conn.execute(user_identities.delete().where(user_identities.c.provider == name))
    return result.rowcount


def callback_url(ctx: Context) -> str | None:
    """Where the providers of this tenant send their users back (to register with each)."""
    public = ctx.platform.settings.public_url
    return f"{public.rstrip('/')}/api/v1/auth/providers/{ctx.tenant}/callback" if public else None


def check_url(url: str, field: str, allow: AllowList) -> None:
    """A provider URL must be https, except on loopback (a provider on this machine), and
    must not name an address of the server's own network that `allow` does not list."""
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None or not parts.hostname:
        raise ValidationError(f"{field} must be a plain https URL", details={"field": field})
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ValidationError(
            f"{field} must use https (http only to a provider on this machine)",
            details={"field": field},
        )
    try:
        allow.check_url(url)
    except OutboundRefused as exc:
        raise ValidationError(f"{field} {exc.message}", details={"field": field}) from None


def allow_list(settings: Settings) -> AllowList:
    """Where provider URLs may lead: public addresses, this machine (a provider run beside
    the server), and what ROOST_WEBHOOK_ALLOW lists (a provider on the private network).
    Checked again at connect time, so a name cannot be re-pointed inward afterwards."""
    return _allow_list(settings.webhook_allow)


@functools.cache
def _allow_list(listed: str) -> AllowList:
    parsed = AllowList.parse(listed)
    return AllowList(parsed.networks + _LOOPBACK, parsed.hosts | {"localhost"})


_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _kind_of(params: ProviderSpec) -> str:
    plain = (params.authorize_url, params.token_url, params.userinfo_url)
    if params.issuer is not None:
        if any(url is not None for url in plain):
            raise ValidationError(
                "give either issuer (OpenID Connect) or authorize_url, token_url and "
                "userinfo_url (plain OAuth2), not both",
                details={"field": "issuer"},
            )
        return "oidc"
    for field, url in zip(("authorize_url", "token_url", "userinfo_url"), plain, strict=True):
        if url is None:
            raise ValidationError(
                f"{field} is needed for a plain OAuth2 provider (or give issuer for OpenID "
                "Connect)",
                details={"field": field},
            )
    return "oauth2"


def _default_scopes(kind: str) -> list[str]:
    return list(_OIDC_SCOPES) if kind == "oidc" else []


def _place(tenant: str, name: str, version: int) -> bytes:
    return secret_place(tenant, _PLACE, name, version)


async def _row(conn: AsyncConnection, name: str, *, field: str = "name") -> RowMapping:
    row = (
        (await conn.execute(select(auth_providers).where(auth_providers.c.name == name)))
        .mappings()
        .first()
    )
    if row is None:
        raise _not_found(name, field)
    return row


def _not_found(name: str, field: str) -> NotFoundError:
    return NotFoundError(f"no sign-in provider named {name!r}", details={"field": field})


def _info(ctx: Context, row: RowMapping) -> ProviderInfo:
    return ProviderInfo(
        name=row["name"],
        kind=row["kind"],
        client_id=row["client_id"],
        issuer=row["issuer"],
        authorize_url=row["authorize_url"],
        token_url=row["token_url"],
        userinfo_url=row["userinfo_url"],
        scopes=list(row["scopes"]),
        callback_url=callback_url(ctx),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
