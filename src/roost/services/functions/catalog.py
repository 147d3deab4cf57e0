"""Deploying functions and managing their versions: deploy, versions, rollback, list, get,
delete.

Every deploy makes a new version (1, 2, ...) and makes it the active one; a version carries
its code and everything that decides how it runs, so a rollback brings all of it back. The
newest `ROOST_FUNCTIONS_MAX_VERSIONS` are kept: the deploy that pushes a version out deletes
it, its code in the blob store and its unpacked copy here (other replicas prune theirs when
they unpack a newer one, `specs.ensure_code`). The
code (a zip, `bundles.py`) is checked whole before anything is kept, then written to the
blob store under a key of its own (`specs.new_blob_key`) before the version's row commits, so
a version never exists without its code; a deploy that loses a race for its version number
removes what it wrote and answers 409.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from roost.backends.sql.tables import function_versions, functions, utcnow
from roost.errors import ConflictError, NotFoundError, PayloadTooLargeError, ValidationError
from roost.services.context import Context
from roost.services.functions import specs
from roost.services.functions.bundles import Entrypoint, check_bundle, code_bundle, handler_kind
from roost.services.functions.schemas import check_schema
from roost.services.registry import operation
from roost.services.security import new_id
from roost.wire.common import Done
from roost.wire.functions import (
    DeployRequest,
    FunctionInfo,
    FunctionList,
    FunctionRef,
    FunctionVersion,
    ListFunctionsRequest,
    RollbackRequest,
    VersionList,
)

_INFO = (
    functions.c.id,
    functions.c.name,
    functions.c.app,
    functions.c.description,
    functions.c.active_version,
    functions.c.latest_version,
    functions.c.created_at,
    functions.c.updated_at,
    functions.c.created_by,
    function_versions.c.entrypoint,
    function_versions.c.kind,
    function_versions.c.execution_mode,
    function_versions.c.timeout,
    function_versions.c.memory_mb,
    function_versions.c.secrets,
    function_versions.c.scopes,
    function_versions.c.params_schema,
)
_ACTIVE = (function_versions.c.function_id == functions.c.id) & (
    function_versions.c.version == functions.c.active_version
)


@operation("functions.deploy", scope="functions:deploy")
async def deploy(ctx: Context, params: DeployRequest) -> FunctionInfo:
    """Deploy a function: a new version of it (the first makes it), active at once. Send the
    code as `code` (one module) or `bundle` (a zip of its folder); the SDK packs a file, a
    folder or a zip. Declaring `scopes` or `secrets` needs those scopes (and `secrets:read`)
    yourself: what a function may do is handed on by whoever deploys it."""
    settings = ctx.platform.settings
    timeout = params.timeout or settings.functions_default_timeout
    memory_mb = params.memory_mb or settings.functions_default_memory_mb
    _check_limits(ctx, timeout, memory_mb)
    secret_names = _checked_secrets(params.secrets)
    if secret_names:
        ctx.require_held(["secrets:read"])
    ctx.require_held(params.scopes)
    if params.params_schema is not None:
        check_schema(params.params_schema)
    entrypoint = Entrypoint.parse(params.entrypoint)
    data = _bundle_of(ctx, params, entrypoint)
    limits = specs.limits_of(settings)
    await asyncio.to_thread(check_bundle, data, limits)
    kind = await asyncio.to_thread(handler_kind, data, entrypoint)
    version_row: dict[str, Any] = {
        "entrypoint": entrypoint.qualified,
        "kind": kind,
        "execution_mode": params.execution_mode,
        "timeout": timeout,
        "memory_mb": memory_mb,
        "secrets": secret_names,
        "scopes": sorted(set(params.scopes)),
        "params_schema": params.params_schema,
        "bundle_size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "created_by": ctx.require_principal().username,
    }
    function_id, version = await _claim_version(ctx, params)
    key = version_row["bundle_key"] = specs.new_blob_key(ctx.tenant, function_id, version)
    await ctx.platform.blobs.put(key, _once(data))
    try:
        pruned = await _commit_version(ctx, params, function_id, version, version_row)
    except BaseException:
        await ctx.platform.blobs.delete(key)
        raise
    specs.forget(ctx.platform, ctx.tenant, params.name)
    for old_key in pruned:
        await ctx.platform.blobs.delete(old_key)
    if pruned:
        await specs.prune_code(
            settings, ctx.tenant, function_id, version - settings.functions_max_versions
        )
    return await _info(ctx, params.name)


@operation("functions.versions", scope="functions:read", read_only=True)
async def versions(ctx: Context, params: FunctionRef) -> VersionList:
    """Every version of a function, newest first, and which one is active."""
    async with ctx.platform.db.read(ctx.tenant) as conn:
        function = await _find(conn, params.name)
        rows = (
            (
                await conn.execute(
                    select(function_versions)
                    .where(function_versions.c.function_id == function["id"])
                    .order_by(function_versions.c.version.desc())
                )
            )
            .mappings()
            .all()
        )
    active = function["active_version"]
    results = [_version(row, row["version"] == active) for row in rows]
    return VersionList(results=results, count=len(results))


@operation("functions.rollback", scope="functions:deploy")
async def rollback(ctx: Context, params: RollbackRequest) -> FunctionInfo:
    """Make an earlier (or any) version of a function the active one."""
    async with ctx.platform.db.write(ctx.tenant) as conn:
        function = await _find(conn, params.name)
        await conn.execute(
            functions.update()
            .where(functions.c.id == function["id"])
            .values(active_version=params.version, updated_at=utcnow())
        )
        # looked for after the update, which waits for a deploy of the same function under
        # way: a version that deploy pruned is seen gone, and the update is rolled back
        exists = await conn.scalar(
            select(func.count())
            .select_from(function_versions)
            .where(
                function_versions.c.function_id == function["id"],
                function_versions.c.version == params.version,
            )
        )
        if not exists:
            raise NotFoundError(
                f"function {params.name!r} has no version {params.version} (the newest "
                f"{ctx.platform.settings.functions_max_versions} are kept)",
                details={"field": "version"},
            )
    specs.forget(ctx.platform, ctx.tenant, params.name)
    return await _info(ctx, params.name)


@operation("functions.list", scope="functions:read", read_only=True)
async def list_functions(ctx: Context, params: ListFunctionsRequest) -> FunctionList:
    """The tenant's functions by name, a page at a time: `{"results", "count"}`."""
    query = select(*_INFO).join(function_versions, _ACTIVE)
    count = select(func.count()).select_from(functions)
    if params.app is not None:
        query = query.where(functions.c.app == params.app)
        count = count.where(functions.c.app == params.app)
    query = query.order_by(functions.c.name).limit(params.limit).offset(params.offset)
    async with ctx.platform.db.read(ctx.tenant) as conn:
        rows = (await conn.execute(query)).mappings().all()
        total = await conn.scalar(count)
    return FunctionList(results=[_function(row) for row in rows], count=int(total or 0))


@operation("functions.get", scope="functions:read", read_only=True)
async def get(ctx: Context, params: FunctionRef) -> FunctionInfo:
    """A function and the settings of its active version."""
    return await _info(ctx, params.name)


@operation("functions.delete", scope="functions:deploy")
async def delete(ctx: Context, params: FunctionRef) -> Done:
    """Delete a function, every version of it and its invocations' records."""
    async with ctx.platform.db.write(ctx.tenant) as conn:
        function = await _find(conn, params.name)
        keys = list(
            await conn.scalars(
                select(function_versions.c.bundle_key).where(
                    function_versions.c.function_id == function["id"]
                )
            )
        )
        await conn.execute(functions.delete().where(functions.c.id == function["id"]))
    specs.forget(ctx.platform, ctx.tenant, params.name)
    for key in keys:
        await ctx.platform.blobs.delete(key)
    await specs.remove_code(ctx.platform.settings, ctx.tenant, function["id"])
    return Done(count=1)


# -- deploying ---------------------------------------------------------------------------


def _check_limits(ctx: Context, timeout: float, memory_mb: int) -> None:
    settings = ctx.platform.settings
    if timeout > settings.functions_max_timeout:
        raise ValidationError(
            f"timeout may be at most {settings.functions_max_timeout} seconds on this server",
            details={"field": "timeout", "limit": settings.functions_max_timeout},
        )
    if memory_mb > settings.functions_max_memory_mb:
        raise ValidationError(
            f"memory_mb may be at most {settings.functions_max_memory_mb} on this server",
            details={"field": "memory_mb", "limit": settings.functions_max_memory_mb},
        )


def _checked_secrets(names: list[str]) -> list[str]:
    for name in names:
        if name.upper().startswith("ROOST_"):
            raise ValidationError(
                f"secret {name!r}: names starting with ROOST_ are the runtime's own",
                details={"field": "secrets"},
            )
    return sorted(set(names))


def _bundle_of(ctx: Context, params: DeployRequest, entrypoint: Entrypoint) -> bytes:
    if (params.code is None) == (params.bundle is None):
        raise ValidationError(
            "send the function's code as either code (one module) or bundle (a zip), not "
            "both or neither",
            details={"field": "code"},
        )
    if params.bundle is not None:
        return params.bundle
    assert params.code is not None
    limit = ctx.platform.settings.functions_max_bundle_bytes
    if len(params.code.encode()) > limit:
        raise PayloadTooLargeError(
            f"code is larger than {limit} bytes", details={"field": "code", "limit": limit}
        )
    return code_bundle(params.code, entrypoint)


async def _claim_version(ctx: Context, params: DeployRequest) -> tuple[str, int]:
    """The function's id (a new one for a first deploy) and the number of the new version.
    `_commit_version` checks that nobody took it meanwhile."""
    async with ctx.platform.db.read(ctx.tenant) as conn:
        row = (
            await conn.execute(
                select(functions.c.id, functions.c.latest_version).where(
                    functions.c.name == params.name
                )
            )
        ).first()
    if row is None:
        return new_id(), 1
    return str(row.id), int(row.latest_version) + 1


async def _commit_version(
    ctx: Context, params: DeployRequest, function_id: str, version: int, row: dict[str, Any]
) -> list[str]:
    """Keep the new version (active), and delete those it pushes out of the newest kept;
    answer the blob keys of their code."""
    now = utcnow()
    raced = ConflictError(
        f"function {params.name!r} was deployed by someone else at the same moment; deploy again",
        details={"field": "name"},
    )
    try:
        async with ctx.platform.db.write(ctx.tenant) as conn:
            if version == 1:
                await conn.execute(
                    functions.insert().values(
                        id=function_id,
                        name=params.name,
                        app=params.app,
                        description=params.description,
                        active_version=1,
                        latest_version=1,
                        created_at=now,
                        updated_at=now,
                        created_by=row["created_by"],
                    )
                )
            else:
                moved = await conn.execute(
                    functions.update()
                    .where(functions.c.id == function_id, functions.c.latest_version == version - 1)
                    .values(
                        app=params.app,
                        description=params.description,
                        active_version=version,
                        latest_version=version,
                        updated_at=now,
                    )
                )
                if moved.rowcount != 1:
                    raise raced
            await conn.execute(
                function_versions.insert().values(
                    function_id=function_id, version=version, created_at=now, **row
                )
            )
            kept_from = version - ctx.platform.settings.functions_max_versions + 1
            return await _prune_versions(conn, function_id, kept_from)
    except IntegrityError:
        raise raced from None


async def _prune_versions(conn: Any, function_id: str, kept_from: int) -> list[str]:
    """Delete the versions older than `kept_from`; answer the blob keys of their code."""
    older = (function_versions.c.function_id == function_id) & (
        function_versions.c.version < kept_from
    )
    keys = list(await conn.scalars(select(function_versions.c.bundle_key).where(older)))
    if keys:
        await conn.execute(function_versions.delete().where(older))
    return [str(key) for key in keys]


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


# -- reading -------------------------------------------------------------------------------


async def _find(conn: Any, name: str) -> RowMapping:
    function = (
        (await conn.execute(select(functions).where(functions.c.name == name))).mappings().first()
    )
    if function is None:
        raise NotFoundError(f"no function named {name!r}", details={"field": "name"})
    result: RowMapping = function
    return result


async def _info(ctx: Context, name: str) -> FunctionInfo:
    query = select(*_INFO).join(function_versions, _ACTIVE).where(functions.c.name == name)
    async with ctx.platform.db.read(ctx.tenant) as conn:
        row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise NotFoundError(f"no function named {name!r}", details={"field": "name"})
    return _function(row)


def _function(row: RowMapping) -> FunctionInfo:
    return FunctionInfo(
        id=row["id"],
        name=row["name"],
        slug=row["name"],
        app=row["app"],
        description=row["description"],
        version=row["active_version"],
        latest_version=row["latest_version"],
        entrypoint=row["entrypoint"],
        kind=row["kind"],
        execution_mode=row["execution_mode"],
        timeout=row["timeout"],
        memory_mb=row["memory_mb"],
        secrets=list(row["secrets"]),
        scopes=list(row["scopes"]),
        params_schema=row["params_schema"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        created_by=row["created_by"],
    )


def _version(row: RowMapping, active: bool) -> FunctionVersion:
    return FunctionVersion(
        version=row["version"],
        active=active,
        entrypoint=row["entrypoint"],
        kind=row["kind"],
        execution_mode=row["execution_mode"],
        timeout=row["timeout"],
        memory_mb=row["memory_mb"],
        secrets=list(row["secrets"]),
        scopes=list(row["scopes"]),
        params_schema=row["params_schema"],
        bundle_size=row["bundle_size"],
        sha256=row["sha256"],
        created_at=row["created_at"],
        created_by=row["created_by"],
    )
