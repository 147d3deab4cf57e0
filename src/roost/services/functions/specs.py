"""A function version as a run needs it, and its code unpacked where the runtime reads it.

The active version of each function, and each version a queued run asks for, is cached for
2 s (and dropped by every change in this process), as table definitions are: a deploy or
rollback reaches other replicas within that.
The code is kept in the blob store, so every replica can run every version; each replica
unpacks a version once, on its first run there, into a read-only folder under its data dir
(`functions/<tenant>/<function id>/<version>`), checking the bundle's SHA-256 first, and then
removes the copies of versions of that function old enough to have been pruned from the
catalog (`ROOST_FUNCTIONS_MAX_VERSIONS` kept), so that a replica keeps no more than that.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import secrets
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.engine import RowMapping

from roost.backends.sql.tables import function_versions, functions
from roost.errors import NotFoundError, ServerError
from roost.services.caching import TenantCache, TTLCache
from roost.services.context import Platform
from roost.services.functions.bundles import BundleLimits, remove_tree, unpack
from roost.settings import Settings
from roost.wire.functions import ExecutionMode, HandlerKind


class FunctionSpec(msgspec.Struct, frozen=True):
    id: str
    name: str
    app: str
    version: int
    entrypoint: str
    kind: HandlerKind
    execution_mode: ExecutionMode
    timeout: float
    memory_mb: int
    secrets: tuple[str, ...]
    scopes: frozenset[str]
    params_schema: dict[str, Any] | None
    sha256: str
    bundle_key: str


_ACTIVE = TenantCache[FunctionSpec]("functions.active", ttl=2.0)
_VERSIONS = TenantCache[FunctionSpec]("functions.versions", ttl=2.0)
_unpacking: dict[Path, asyncio.Future[None]] = {}
# folders found unpacked, taken as there for a second without asking the disk again (a stat
# of a cold path per call cost more than a warm run's own work on the server)
_SEEN = TTLCache[bool](1.0, max_entries=4096)


async def active_spec(platform: Platform, tenant: str, name: str) -> FunctionSpec:
    """The active version of function `name`; NotFoundError if there is none."""

    async def load() -> FunctionSpec:
        return await _load(platform, tenant, functions.c.name == name, None, name)

    return await _ACTIVE.of(platform).get_or_load(f"{tenant}/{name}", load)


async def version_spec(
    platform: Platform, tenant: str, function_id: str, version: int
) -> FunctionSpec:
    """One version of a function by id (a queued run runs the version it was queued for),
    cached as the active versions are: runs queued in a burst cost one read, not one each."""

    async def load() -> FunctionSpec:
        return await _load(platform, tenant, functions.c.id == function_id, version, function_id)

    return await _VERSIONS.of(platform).get_or_load(f"{tenant}/{function_id}/{version}", load)


def forget(platform: Platform, tenant: str, name: str) -> None:
    """Drop the cached active version of `name` (after a deploy, rollback or delete), and
    every cached version by id (a deleted or pruned one with them: changes are rare)."""
    _ACTIVE.of(platform).pop(f"{tenant}/{name}")
    _VERSIONS.of(platform).clear()


def limits_of(settings: Settings) -> BundleLimits:
    return BundleLimits(
        max_bundle_bytes=settings.functions_max_bundle_bytes,
        max_unpacked_bytes=settings.functions_max_unpacked_bytes,
        max_files=settings.functions_max_files,
    )


def new_blob_key(tenant: str, function_id: str, version: int) -> str:
    """Where a deploy keeps a version's code: a key no other deploy writes (the tenant's
    prefix first, so a tenant's deletion takes it)."""
    return f"{tenant}/functions/{function_id}/{version}-{secrets.token_hex(8)}.zip"


def code_root(settings: Settings, tenant: str) -> Path:
    """Where a tenant's unpacked code lives on this replica."""
    data_dir = settings.data_dir
    root = _resolved(data_dir) if data_dir.is_absolute() else data_dir.resolve()
    return root / "functions" / tenant


@functools.lru_cache(maxsize=64)
def _resolved(data_dir: Path) -> Path:
    """An absolute data dir, resolved once (a few system calls per run otherwise; a relative
    one depends on the working folder, so it is resolved each time)."""
    return data_dir.resolve()


def code_dir(settings: Settings, tenant: str, function_id: str, version: int) -> Path:
    if settings.data_dir.is_absolute():  # each run asks: the path is built once
        return _code_dir(settings.data_dir, tenant, function_id, version)
    return code_root(settings, tenant) / function_id / str(version)


@functools.lru_cache(maxsize=4096)
def _code_dir(data_dir: Path, tenant: str, function_id: str, version: int) -> Path:
    return _resolved(data_dir) / "functions" / tenant / function_id / str(version)


async def ensure_code(platform: Platform, tenant: str, spec: FunctionSpec) -> Path:
    """The version's code, unpacked (once per replica; concurrent runs wait for one)."""
    folder = code_dir(platform.settings, tenant, spec.id, spec.version)
    if _SEEN.get(str(folder)):
        return folder
    if folder.is_dir():
        _SEEN.put(str(folder), True)
        return folder
    pending = _unpacking.get(folder)
    if pending is not None:
        await asyncio.shield(pending)
        return folder
    pending = asyncio.get_running_loop().create_future()
    _unpacking[folder] = pending
    try:
        data = await _read_bundle(platform, tenant, spec)
        await asyncio.to_thread(unpack, data, folder, limits_of(platform.settings))
        # the catalog keeps the newest versions, and this one is at most the newest
        pruned = spec.version - platform.settings.functions_max_versions
        await prune_code(platform.settings, tenant, spec.id, pruned)
    except BaseException as exc:
        pending.set_exception(exc)
        pending.exception()  # retrieved: a failure nobody else waited for logs nothing
        raise
    else:
        pending.set_result(None)
    finally:
        del _unpacking[folder]
    return folder


async def remove_code(settings: Settings, tenant: str, function_id: str | None = None) -> None:
    """Remove the unpacked code of one function (or of the whole tenant) on this replica."""
    root = code_root(settings, tenant)
    _SEEN.clear()
    await asyncio.to_thread(remove_tree, root / function_id if function_id else root)


async def prune_code(settings: Settings, tenant: str, function_id: str, up_to: int) -> None:
    """Remove this replica's unpacked copies of a function's versions up to `up_to`."""
    if up_to < 1:
        return
    _SEEN.clear()

    def prune() -> None:
        folder = code_root(settings, tenant) / function_id
        for version in folder.iterdir() if folder.is_dir() else ():
            if version.name.isascii() and version.name.isdigit() and int(version.name) <= up_to:
                remove_tree(version)

    await asyncio.to_thread(prune)


async def _read_bundle(platform: Platform, tenant: str, spec: FunctionSpec) -> bytes:
    chunks = [chunk async for chunk in platform.blobs.get(spec.bundle_key)]
    data = b"".join(chunks)
    if hashlib.sha256(data).hexdigest() != spec.sha256:
        # the store returned other bytes than were deployed: never run them
        raise ServerError(
            f"the code of {spec.name} version {spec.version} does not match its checksum",
            code="bundle_corrupt",
        )
    return data


async def _load(
    platform: Platform, tenant: str, which: Any, version: int | None, shown: str
) -> FunctionSpec:
    wanted = functions.c.active_version if version is None else version
    query = (
        select(functions, function_versions)
        .join(function_versions, function_versions.c.function_id == functions.c.id)
        .where(which, function_versions.c.version == wanted)
    )
    async with platform.db.read(tenant) as conn:
        row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise NotFoundError(f"no function named {shown!r}", details={"field": "name"})
    return spec_of(row)


def spec_of(row: RowMapping) -> FunctionSpec:
    """A spec from a row of roost_functions joined with one of its versions."""
    return FunctionSpec(
        id=row["id"],
        name=row["name"],
        app=row["app"],
        version=row["version"],
        entrypoint=row["entrypoint"],
        kind=row["kind"],
        execution_mode=row["execution_mode"],
        timeout=row["timeout"],
        memory_mb=row["memory_mb"],
        secrets=tuple(row["secrets"]),
        scopes=frozenset(row["scopes"]),
        params_schema=row["params_schema"],
        sha256=row["sha256"],
        bundle_key=row["bundle_key"],
    )
