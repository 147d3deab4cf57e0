"""Secrets, per tenant: encrypted at rest (`vault.py`), versioned, tagged, with app overrides.

A secret is tenant-wide, or an app's own (`app="billing"`); asking for an app's secret falls
back to the tenant-wide one of the same key. Every value a secret has had is kept as a
version. Values never appear in logs, listings or error messages: only `secrets.get` and
`secrets.get_many` return them, to callers with `secrets:read`.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from roost.backends.sql.tables import secret_versions, secrets, utcnow
from roost.errors import ConflictError, SecretNotFoundError, ServerError, ValidationError
from roost.services.context import Context
from roost.services.registry import operation
from roost.services.security import new_id
from roost.services.vault import secret_place
from roost.wire.common import Done
from roost.wire.secrets import (
    GetSecretRequest,
    GetSecretsRequest,
    ListSecretsRequest,
    Secret,
    SecretInfo,
    SecretPage,
    SecretRef,
    SecretVersion,
    SetSecretRequest,
    UpdateSecretRequest,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from sqlalchemy.ext.asyncio import AsyncConnection

_TENANT_WIDE = ""


@operation("secrets.set", scope="secrets:write")
async def set_secret(ctx: Context, params: SetSecretRequest) -> SecretInfo:
    """Create a secret or give it a new value (a new version); type, tags and comment are
    replaced by those sent."""
    return await _write(ctx, params.key, params.app, params.value, params, create=True)


@operation("secrets.update", scope="secrets:write")
async def update_secret(ctx: Context, params: UpdateSecretRequest) -> SecretInfo:
    """Change an existing secret: a value makes a new version; fields left out stay as they
    are."""
    if all(getattr(params, field) is None for field in ("value", "secret_type", "tags", "comment")):
        raise ValidationError(
            "nothing to update: send value, secret_type, tags or comment",
            details={"field": "value"},
        )
    return await _write(ctx, params.key, params.app, params.value, params, create=False)


@operation("secrets.get", scope="secrets:read", read_only=True)
async def get_secret(ctx: Context, params: GetSecretRequest) -> Secret:
    """A secret with its value: the app's own if it has one, else the tenant-wide one.
    `tags`: each must be on the secret, or the call fails. `version`: an earlier value."""
    async with ctx.platform.db.read(ctx.tenant) as conn:
        found = await _lookup(conn, [params.key], params.app)
        row = found.get(params.key)
        if row is None:
            raise _not_found(params.key, params.app)
        if missing := sorted(set(params.tags) - set(row["tags"])):
            raise ValidationError(
                f"secret {params.key!r} does not carry the tags {', '.join(missing)}",
                code="tags_not_present",
                details={"field": "tags", "missing": missing},
            )
        version = params.version or row["version"]
        sealed = await conn.scalar(
            select(secret_versions.c.ciphertext).where(
                secret_versions.c.secret_id == row["id"], secret_versions.c.version == version
            )
        )
    if sealed is None:
        raise SecretNotFoundError(
            f"secret {params.key!r} has no version {version} (see secrets.versions)",
            details={"field": "version"},
        )
    return _open(ctx, await _data_key(ctx), row, params.app, version, bytes(sealed))


@operation("secrets.get_many", scope="secrets:read", read_only=True)
async def get_secrets(ctx: Context, params: GetSecretsRequest) -> dict[str, Secret]:
    """Several secrets in one call, by key (app overrides as in `secrets.get`). Keys that do
    not exist are left out of the answer."""
    async with ctx.platform.db.read(ctx.tenant) as conn:
        found = await _lookup(conn, params.keys, params.app)
        if not found:
            return {}
        current = or_(
            *(
                and_(
                    secret_versions.c.secret_id == row["id"],
                    secret_versions.c.version == row["version"],
                )
                for row in found.values()
            )
        )
        rows = await conn.execute(
            select(secret_versions.c.secret_id, secret_versions.c.ciphertext).where(current)
        )
        sealed = {secret_id: bytes(ciphertext) for secret_id, ciphertext in rows}
    data_key = await _data_key(ctx)  # once for every secret answered
    return {
        key: _open(ctx, data_key, row, params.app, row["version"], sealed[row["id"]])
        for key, row in found.items()
    }


@operation("secrets.list", scope="secrets:read", read_only=True)
async def list_secrets(ctx: Context, params: ListSecretsRequest) -> SecretPage:
    """Secrets without their values, by key (then app), a page at a time. `search`: part of
    the key, any case; `prefix`: the key's start; `tags`: each must be on the secret; `app`:
    that app's own secrets only."""
    query = select(secrets).order_by(secrets.c.key, secrets.c.app).limit(params.page_size + 1)
    if params.search:
        query = query.where(
            func.lower(secrets.c.key).contains(params.search.lower(), autoescape=True)
        )
    if params.prefix:
        query = query.where(secrets.c.key.startswith(params.prefix, autoescape=True))
    if params.secret_type:
        query = query.where(secrets.c.secret_type == params.secret_type)
    if params.app is not None:
        query = query.where(secrets.c.app == params.app)
    if params.cursor:
        key, app = _read_cursor(params.cursor)
        query = query.where(
            or_(secrets.c.key > key, and_(secrets.c.key == key, secrets.c.app > app))
        )
    wanted = set(params.tags)
    results: list[RowMapping] = []
    async with ctx.platform.db.read(ctx.tenant) as conn:
        while len(results) <= params.page_size:
            rows = (await conn.execute(query)).mappings().all()
            results += [row for row in rows if wanted <= set(row["tags"])]
            if len(rows) <= params.page_size:
                break
            last = rows[-1]
            query = query.where(
                or_(
                    secrets.c.key > last["key"],
                    and_(secrets.c.key == last["key"], secrets.c.app > last["app"]),
                )
            )
    page, more = results[: params.page_size], len(results) > params.page_size
    return SecretPage(
        results=[_info(row) for row in page],
        next_cursor=_make_cursor(page[-1]) if more else None,
    )


@operation("secrets.versions", scope="secrets:read", read_only=True)
async def list_versions(ctx: Context, params: SecretRef) -> list[SecretVersion]:
    """Every value a secret has had, newest first, without the values (read one with
    `secrets.get(key, version=n)`)."""
    app = params.app or _TENANT_WIDE
    async with ctx.platform.db.read(ctx.tenant) as conn:
        rows = (
            (
                await conn.execute(
                    select(secret_versions)
                    .join(secrets, secrets.c.id == secret_versions.c.secret_id)
                    .where(secrets.c.key == params.key, secrets.c.app == app)
                    .order_by(secret_versions.c.version.desc())
                )
            )
            .mappings()
            .all()
        )
    if not rows:
        raise _not_found(params.key, params.app)
    return [
        SecretVersion(
            version=row["version"],
            comment=row["comment"],
            created_at=row["created_at"],
            created_by=row["created_by"],
        )
        for row in rows
    ]


@operation("secrets.delete", scope="secrets:write")
async def delete_secret(ctx: Context, params: SecretRef) -> Done:
    """Delete a secret and all of its versions (an app's own only: the tenant-wide one of the
    same key stays)."""
    async with ctx.platform.db.write(ctx.tenant) as conn:
        result = await conn.execute(
            secrets.delete().where(
                secrets.c.key == params.key, secrets.c.app == (params.app or _TENANT_WIDE)
            )
        )
    if result.rowcount == 0:
        raise _not_found(params.key, params.app)
    return Done(count=result.rowcount)


async def _write(
    ctx: Context,
    key: str,
    app: str | None,
    value: str | None,
    fields: SetSecretRequest | UpdateSecretRequest,
    *,
    create: bool,
) -> SecretInfo:
    data_key = await ctx.platform.vault.data_key(ctx.platform.db, ctx.tenant, create=True)
    assert data_key is not None
    try:
        return await _write_once(ctx, data_key, key, app, value, fields, create=create)
    except IntegrityError:  # a concurrent first set of the same key won: now this one updates
        pass
    try:
        return await _write_once(ctx, data_key, key, app, value, fields, create=create)
    except IntegrityError:
        raise ConflictError(
            f"secret {key!r} is being written by another request; try again",
            details={"field": "key"},
        ) from None


async def _write_once(
    ctx: Context,
    data_key: AESGCM,
    key: str,
    app: str | None,
    value: str | None,
    fields: SetSecretRequest | UpdateSecretRequest,
    *,
    create: bool,
) -> SecretInfo:
    """One transaction of `_write`: insert or update the secret, and seal a new version."""
    principal = ctx.require_principal()
    place = app or _TENANT_WIDE
    async with ctx.platform.db.write(ctx.tenant) as conn:
        row = (
            (
                await conn.execute(
                    select(secrets)
                    .where(secrets.c.key == key, secrets.c.app == place)
                    .with_for_update()
                )
            )
            .mappings()
            .first()
        )
        if row is None and not create:
            raise _not_found(key, app)
        now = utcnow()
        changes: dict[str, Any] = {
            name: getattr(fields, name)
            for name in ("secret_type", "tags", "comment")
            if getattr(fields, name) is not None
        }
        if row is None:
            secret_id, version = new_id(), 1
            await conn.execute(
                secrets.insert().values(
                    id=secret_id,
                    app=place,
                    key=key,
                    version=version,
                    created_at=now,
                    updated_at=now,
                    **{"secret_type": "generic", "tags": [], "comment": ""} | changes,
                )
            )
        else:
            secret_id = row["id"]
            version = row["version"] + (value is not None)
            await conn.execute(
                secrets.update()
                .where(secrets.c.id == secret_id)
                .values(version=version, updated_at=now, **changes)
            )
        if value is not None:
            await conn.execute(
                secret_versions.insert().values(
                    secret_id=secret_id,
                    version=version,
                    ciphertext=ctx.platform.vault.seal(
                        data_key, secret_place(ctx.tenant, place, key, version), value
                    ),
                    comment=fields.comment or "",
                    created_at=now,
                    created_by=principal.username,
                )
            )
        stored = (
            (await conn.execute(select(secrets).where(secrets.c.id == secret_id))).mappings().one()
        )
    return _info(stored)


async def _lookup(
    conn: AsyncConnection, keys: Sequence[str], app: str | None
) -> dict[str, RowMapping]:
    """The row answering each key: the app's own, else the tenant-wide one."""
    places = [_TENANT_WIDE] if app is None else [app, _TENANT_WIDE]
    rows = (
        (
            await conn.execute(
                select(secrets).where(secrets.c.key.in_(keys), secrets.c.app.in_(places))
            )
        )
        .mappings()
        .all()
    )
    found: dict[str, RowMapping] = {}
    for row in rows:
        if row["key"] not in found or row["app"] != _TENANT_WIDE:
            found[row["key"]] = row
    return found


async def _data_key(ctx: Context) -> AESGCM:
    """The tenant's data key, which exists since the tenant's first secret was set."""
    data_key = await ctx.platform.vault.data_key(ctx.platform.db, ctx.tenant, create=False)
    if data_key is None:
        raise ServerError("this tenant has secrets but no data key", code="secret_unreadable")
    return data_key


def _open(
    ctx: Context,
    data_key: AESGCM,
    row: RowMapping,
    asked_app: str | None,
    version: int,
    sealed: bytes,
) -> Secret:
    place = secret_place(ctx.tenant, row["app"], row["key"], version)
    info = _info(row)
    return Secret(
        **{field: getattr(info, field) for field in info.__struct_fields__},
        value=ctx.platform.vault.open(data_key, place, sealed),
        inherited=asked_app is not None and row["app"] == _TENANT_WIDE,
    )


def _info(row: RowMapping) -> SecretInfo:
    return SecretInfo(
        key=row["key"],
        app=row["app"] or None,
        secret_type=row["secret_type"],
        tags=row["tags"],
        comment=row["comment"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _not_found(key: str, app: str | None) -> SecretNotFoundError:
    where = f" for app {app!r} or tenant-wide" if app else ""
    return SecretNotFoundError(f"no secret {key!r}{where}", details={"field": "key"})


def _make_cursor(row: RowMapping) -> str:
    return base64.urlsafe_b64encode(f"{row['key']}\0{row['app']}".encode()).decode()


def _read_cursor(cursor: str) -> tuple[str, str]:
    try:
        key, app = base64.urlsafe_b64decode(cursor.encode()).decode().split("\0")
    except ValueError:
        raise ValidationError(
            "cursor is not one this server gave", details={"field": "cursor"}
        ) from None
    return key, app
