"""API keys: long-lived credentials for services, shown once, stored hashed, scoped, expiring."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.engine import RowMapping

from roost.backends.sql.tables import api_keys
from roost.errors import AuthorizationError, NotFoundError, ValidationError
from roost.services import accounts
from roost.services.context import Context
from roost.services.registry import operation
from roost.services.security import make_opaque, new_id, scope_allows
from roost.wire.auth import ApiKey, ApiKeyRef, CreateApiKeyRequest, CreatedApiKey
from roost.wire.common import Done, Empty


@operation("api_keys.create", scope="api_keys:write")
async def create(ctx: Context, params: CreateApiKeyRequest) -> CreatedApiKey:
    """Create a key for the signed-in user. The key is in this answer only; keep it safe.

    Without `scopes` the key acts with all of its owner's scopes; with them, each must be one
    the owner holds. A key never grants more than its owner currently has.
    """
    principal = ctx.require_user()
    now = ctx.now()
    expires_at = params.expires_at
    if params.expires_in is not None:
        expires_at = now + timedelta(seconds=params.expires_in)
    elif expires_at is None and ctx.platform.settings.api_key_default_ttl:
        expires_at = now + timedelta(seconds=ctx.platform.settings.api_key_default_ttl)
    if expires_at is not None and (expires_at.tzinfo is None or expires_at <= now):
        raise ValidationError(
            "expires_at must be a future time with a time zone", details={"field": "expires_at"}
        )
    scopes = sorted(set(params.scopes)) or ["*"]
    if params.scopes:
        held = principal.grants[0]
        if refused := [s for s in scopes if not scope_allows(held, s)]:
            raise AuthorizationError(
                f"you cannot give a key scopes you do not hold: {', '.join(refused)}",
                code="missing_scope",
                details={"scopes": refused},
            )
    key_id = new_id()
    token = make_opaque("rak", ctx.tenant, key_id)
    async with ctx.platform.db.write(ctx.tenant) as conn:
        await conn.execute(
            api_keys.insert().values(
                id=key_id,
                user_id=principal.user_id,
                name=params.name,
                key_hash=token.hash,
                prefix=token.display_prefix,
                scopes=scopes,
                created_at=now,
                expires_at=expires_at,
            )
        )
    return CreatedApiKey(
        id=key_id,
        name=params.name,
        prefix=token.display_prefix,
        scopes=scopes,
        created_at=now,
        expires_at=expires_at,
        key=token.token,
    )


@operation("api_keys.list", scope="api_keys:read", read_only=True)
async def list_keys(ctx: Context, params: Empty) -> list[ApiKey]:
    """The caller's API keys, newest first, without their secrets."""
    principal = ctx.require_principal()
    async with ctx.platform.db.read(ctx.tenant) as conn:
        rows = (
            (
                await conn.execute(
                    select(api_keys)
                    .where(api_keys.c.user_id == principal.user_id)
                    .order_by(api_keys.c.created_at.desc())
                )
            )
            .mappings()
            .all()
        )
    return [_to_wire(row) for row in rows]


@operation("api_keys.revoke", scope="api_keys:write", revokes=True)
async def revoke(ctx: Context, params: ApiKeyRef) -> Done:
    """Revoke one of the caller's keys (an admin with `users:write` may revoke the keys of
    users whose scopes they hold)."""
    principal = ctx.require_principal()
    async with ctx.platform.db.write(ctx.tenant) as conn:
        owner_id = (
            await conn.execute(select(api_keys.c.user_id).where(api_keys.c.id == params.id))
        ).scalar()
        if owner_id is None or (
            owner_id != principal.user_id and not principal.allows("users:write")
        ):
            raise NotFoundError(f"no API key with id {params.id!r}", details={"field": "id"})
        if owner_id != principal.user_id and (owner := await accounts.find_by_id(conn, owner_id)):
            await accounts.ensure_may_act_on(principal, conn, owner, ctx.now())
        result = await conn.execute(
            api_keys.update().where(api_keys.c.id == params.id).values(revoked_at=ctx.now())
        )
    await ctx.platform.forget_principals()
    return Done(count=result.rowcount)


def _to_wire(row: RowMapping) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        scopes=row["scopes"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        last_used_at=row["last_used_at"],
        revoked=row["revoked_at"] is not None,
    )
