"""The tenant's policies as data: stored, changed as a validated set, compiled once per change.

- **Storage.** `roost_policies` holds the current policies by key; `roost_policy_changes`
  every put, delete and change of the globals, with who made it and when; one row of
  `roost_policy_state` the tenant's revision (a number every change moves on) and its globals.
- **Changes.** A change reads the stored set and revision, builds the new set, validates it
  whole (`roost.policy.load`: every problem listed, nothing written on any), then writes
  only if the revision is still the one it read (else it starts again, at most a few times):
  validation, which compiles every condition, runs outside the write transaction.
- **The compiled engine** of a tenant is kept in memory and labelled with the tenant's
  *stamp*: a random token in the KV store under `$policies:<tenant>` (a key no tenant's KV
  calls can reach), replaced after every change. Each call reads the stamp (from Redis' near
  cache, which Redis invalidates before it answers the writer), and compiles again when it
  differs. So a change takes effect on the very next call on every replica, not when a bus
  notification arrives, and a replica that missed one cannot keep stale policies. A server
  without Redis is the only one (`Platform.sole_server`): every change is made through it and
  drops the engine it keeps at once, so it reads no stamp (a read of SQLite per guarded call,
  ~7 us, and ~30 us while other connections write).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import delete, insert, select, update

from roost.backends.sql.tables import (
    policies,
    policy_bindings,
    policy_changes,
    policy_state,
    utcnow,
)
from roost.errors import ConflictError, ServerError
from roost.services.caching import TenantCache
from roost.services.context import Context, Platform
from roost.wire.policy import MAX_DOCUMENT_BYTES, MAX_KEY_CHARS, Binding, BindingRef

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from roost.policy import Engine
    from roost.policy.loader import Issue
    from roost.policy.schemas import Enforcement

# The policy engine (YAML, CEL, the rule tables) is imported where policies are first read,
# compiled or validated, in the worker thread that compiles them where there is one: a server
# whose tenants use no policies never loads it, and `roost serve` starts without it.

__all__ = [
    "Candidate",
    "Change",
    "Guard",
    "Stored",
    "apply_change",
    "candidates",
    "effective_globals",
    "policy_engine",
    "policy_guard",
    "read_bindings",
    "read_stored",
    "stamp_key",
    "write_binding",
]

_STATE_ROW = 1
_STAMP = "$policies:"  # KV keys of tenants start with the tenant name, never with "$"
_ATTEMPTS = 5
_ENGINES = TenantCache["_Compiled"]("policies.engines", ttl=300.0)  # bounds a lost stamp


class _Compiled(msgspec.Struct, frozen=True):
    stamp: str | None  # the tenant's stamp read before the policies were
    engine: Engine
    bindings: dict[tuple[str, str], Binding]  # (target, name) -> binding


class Guard(msgspec.Struct, frozen=True):
    """The policies a bound table, bucket, stream, queue or function answers to: the
    tenant's current engine and the binding (resource kind, version, scope)."""

    engine: Engine
    binding: Binding


class Candidate(msgspec.Struct, frozen=True):
    """A policy sent to be stored, with its names."""

    key: str
    kind: str
    name: str
    version: str
    scope: str
    disabled: bool
    document: dict[str, Any]


class Stored(msgspec.Struct):
    """The tenant's policies and globals as one read found them, at `revision`."""

    revision: int
    globals: dict[str, Any]
    documents: dict[str, dict[str, Any]]  # key -> document


class Change(msgspec.Struct):
    """What a change does: put documents, delete keys, set the tenant's globals."""

    puts: list[Candidate] = msgspec.field(default_factory=list)
    deletes: list[str] = msgspec.field(default_factory=list)
    globals: dict[str, Any] | None = None

    def applied_to(self, stored: Stored) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
        """The documents and the tenant's globals once the change is made."""
        documents = {k: v for k, v in stored.documents.items() if k not in self.deletes}
        documents.update((c.key, c.document) for c in self.puts)
        return documents, stored.globals if self.globals is None else self.globals

    @property
    def empty(self) -> bool:
        return not self.puts and not self.deletes and self.globals is None


def stamp_key(tenant: str) -> str:
    """The KV key of a tenant's stamp (deleted with the tenant)."""
    return _STAMP + tenant


def effective_globals(platform: Platform, own: Mapping[str, Any]) -> dict[str, Any]:
    """What conditions see as globals: the server's, with the tenant's own over them."""
    return {**platform.settings.policy_globals, **own}


# --- the compiled engine -------------------------------------------------------------------


async def policy_engine(ctx: Context) -> Engine:
    """The engine of the calling tenant's current policies: compiled once per change and kept,
    checked against the tenant's stamp at each call (so a change on any replica is seen by
    the next call here). For the services that enforce policies on their records."""
    return (await _current(ctx)).engine


async def policy_guard(ctx: Context, target: str, name: str) -> Guard | None:
    """The policies guarding the calling tenant's `target` (table, bucket, stream, queue or
    function) `name`, None when it is not bound; as fresh as `policy_engine`."""
    try:
        compiled = await _current(ctx)
    except ServerError:
        # stored policies that no longer compile fail what they guard, not the rest
        bound = await read_bindings(ctx.platform, ctx.tenant)
        if all((b.target, b.name) != (target, name) for b in bound):
            return None
        raise
    binding = compiled.bindings.get((target, name))
    return None if binding is None else Guard(compiled.engine, binding)


async def _current(ctx: Context) -> _Compiled:
    platform, tenant = ctx.platform, ctx.tenant
    cache = _ENGINES.of(platform)
    if platform.sole_server:  # every change is made here, and drops the engine here at once
        return await cache.get_or_load(tenant, _loader(platform, tenant, None))
    for _ in range(3):
        stamp = await _stamp(platform, tenant)
        held = cache.get(tenant)
        if held is not None and held.stamp == stamp:
            return held
        if held is not None:
            cache.pop(tenant)
        compiled = await cache.get_or_load(tenant, _loader(platform, tenant, stamp))
        if compiled.stamp == stamp:  # not a load another call began before a change
            return compiled
    return await _compile_stored(platform, tenant, await _stamp(platform, tenant))


def _loader(
    platform: Platform, tenant: str, stamp: str | None
) -> Callable[[], Awaitable[_Compiled]]:
    return lambda: _compile_stored(platform, tenant, stamp)


async def _stamp(platform: Platform, tenant: str) -> str | None:
    entry = await platform.kv.get(stamp_key(tenant))
    if entry is not None:
        return entry.value
    # A tenant whose policies never changed has no stamp yet: one is set now (never over
    # another's), as Redis' near cache keeps values, not their absence, and every guarded
    # call would otherwise cost a round trip to Redis. A change still sets a fresh one.
    await platform.kv.set(stamp_key(tenant), json.dumps(secrets.token_hex(16)), nx=True)
    entry = await platform.kv.get(stamp_key(tenant))
    return entry.value if entry is not None else None


async def _new_stamp(platform: Platform, tenant: str) -> None:
    await platform.kv.set(stamp_key(tenant), json.dumps(secrets.token_hex(16)))


async def _compile_stored(platform: Platform, tenant: str, stamp: str | None) -> _Compiled:
    stored = await read_stored(platform, tenant)
    bindings: dict[tuple[str, str], Binding] = {
        (b.target, b.name): b for b in await read_bindings(platform, tenant)
    }
    documents = list(stored.documents.values())
    globals_ = effective_globals(platform, stored.globals)
    engine = await asyncio.to_thread(
        _compile, documents, globals_, platform.settings.policy_schema_enforcement
    )
    return _Compiled(stamp, engine, bindings)


def _compile(
    documents: list[dict[str, Any]], globals_: dict[str, Any], enforcement: Enforcement
) -> Engine:
    """The engine of stored policies (in a worker thread: compiling, and the first import of
    the engine, stay off the event loop)."""
    from roost.policy.engine import Engine
    from roost.policy.loader import PolicyValidationError

    try:
        return Engine.from_policies(documents, globals_, enforcement)
    except PolicyValidationError as exc:
        # Stored sets were valid when written; a server setting (ROOST_POLICY_GLOBALS) or an
        # upgrade may have made them invalid since. Not the caller's doing: a server error
        # that says what to fix.
        raise ServerError(
            "the stored policies no longer compile (fix them with policies.put or "
            f"policies.delete): {exc.message}",
            code="invalid_stored_policies",
            details=exc.details,
        ) from None


async def read_bindings(platform: Platform, tenant: str) -> list[Binding]:
    """Every binding of the tenant, by target and name."""
    async with platform.db.read(tenant) as conn:
        rows = await conn.execute(
            select(policy_bindings).order_by(policy_bindings.c.target, policy_bindings.c.name)
        )
        return [Binding(**row) for row in rows.mappings()]


async def write_binding(ctx: Context, binding: Binding | BindingRef) -> bool:
    """Store a binding (or remove one, given its reference), then move the stamp on so the
    next call on every replica enforces it; whether a row was written or removed."""
    key = (policy_bindings.c.target == binding.target, policy_bindings.c.name == binding.name)
    async with ctx.platform.db.write(ctx.tenant) as conn:
        removed = (await conn.execute(delete(policy_bindings).where(*key))).rowcount
        if isinstance(binding, Binding):
            await conn.execute(insert(policy_bindings).values(msgspec.structs.asdict(binding)))
    _ENGINES.of(ctx.platform).pop(ctx.tenant)
    await asyncio.shield(_new_stamp(ctx.platform, ctx.tenant))
    return isinstance(binding, Binding) or removed > 0


# --- reading and changing -------------------------------------------------------------------


async def read_stored(platform: Platform, tenant: str) -> Stored:
    """The revision and globals, then the documents (newer than the revision if a change came
    between: a write guarded by that revision then fails and starts again)."""
    async with platform.db.read(tenant) as conn:
        state = (
            await conn.execute(
                select(policy_state.c.revision, policy_state.c.globals).where(
                    policy_state.c.id == _STATE_ROW
                )
            )
        ).one()
        rows = await conn.execute(select(policies.c.key, policies.c.document))
        documents = {row.key: dict(row.document) for row in rows}
    return Stored(state.revision, dict(state.globals), documents)


def candidates(sources: list[Any]) -> tuple[list[Candidate], list[Issue]]:
    """The policies of a put (texts with one or several documents, or objects), with the
    problems of those that are not policies at all. Each is named `policies[i]` (`#j` for the
    j-th document of a text) until it is known by its key."""
    from roost.policy.loader import DecodeError, Issue, decode, describe, read_documents

    found: list[Candidate] = []
    issues: list[Issue] = []
    seen: dict[str, str] = {}
    for source in read_documents(sources, origin="policies"):
        try:
            doc = decode(source)
        except DecodeError as exc:
            issues.append(Issue(source.origin, exc.path, str(exc)))
            continue
        names = describe(doc)
        problem = _refusal(source.data, names.key, seen)
        if problem:
            issues.append(Issue(names.key or source.origin, "", problem))
            continue
        seen[names.key] = source.origin
        found.append(
            Candidate(
                names.key,
                names.kind,
                names.name,
                names.version,
                names.scope,
                doc.disabled,
                dict(source.data),
            )
        )
    return found, issues


def _refusal(data: Any, key: str, seen: dict[str, str]) -> str | None:
    try:
        size = len(msgspec.json.encode(data))
    except (TypeError, msgspec.EncodeError):
        return "holds values that are not JSON (text, numbers, booleans, lists and objects)"
    if size > MAX_DOCUMENT_BYTES:
        return f"larger than {MAX_DOCUMENT_BYTES // 1024} KiB as JSON"
    if len(key) > MAX_KEY_CHARS:
        return f"its key is longer than {MAX_KEY_CHARS} characters"
    if key in seen:
        return f"sent twice (also as {seen[key]})"
    return None


async def apply_change(
    ctx: Context,
    plan: Callable[[Stored], Change],
    field_name: str,
    issues: list[Issue] | None = None,
) -> tuple[int, Stored, Change]:
    """Make the change `plan` decides from the stored state, once the whole new set is
    valid; PolicyValidationError (naming `field_name`) with every problem, `issues` included,
    and nothing written otherwise. Returns the new revision (the old one if there was nothing
    to change), the state it started from, and the change."""
    principal = ctx.require_principal()
    for _ in range(_ATTEMPTS):
        stored = await read_stored(ctx.platform, ctx.tenant)
        change = plan(stored)
        if change.empty and not issues:
            return stored.revision, stored, change
        await _validate(ctx.platform, stored, change, field_name, issues or [])
        # Shielded: a caller gone between the commit and the new stamp would leave every
        # replica on the old policies (until their engines expire).
        commit = _commit(ctx.platform, ctx.tenant, stored, change, principal.username)
        try:
            revision = await asyncio.shield(commit)
        except _Moved:
            continue
        return revision, stored, change
    raise ConflictError(
        "the policies kept changing while this change was checked; try again",
        details={"field": field_name},
    )


async def _validate(
    platform: Platform, stored: Stored, change: Change, field_name: str, issues: list[Issue]
) -> None:
    documents, own_globals = change.applied_to(stored)
    globals_ = effective_globals(platform, own_globals)
    await asyncio.to_thread(_check, documents, globals_, field_name, issues)


def _check(
    documents: dict[str, dict[str, Any]],
    globals_: dict[str, Any],
    field_name: str,
    issues: list[Issue],
) -> None:
    """Raise PolicyValidationError (naming `field_name`) with `issues` and every problem of
    the set `documents` would make (in a worker thread, as `_compile`)."""
    from roost.policy.loader import MAX_POLICIES, Issue, PolicyValidationError, load

    found = list(issues)
    if len(documents) > MAX_POLICIES:
        found.append(Issue("", "", f"a tenant keeps at most {MAX_POLICIES} policies"))
    else:
        try:
            load(list(documents.values()), globals_)
        except PolicyValidationError as exc:
            found.extend(exc.issues)
    if found:
        refused = PolicyValidationError(found)
        refused.details["field"] = field_name
        raise refused


async def _commit(platform: Platform, tenant: str, stored: Stored, change: Change, by: str) -> int:
    """Write the change if the revision is still `stored`'s, then move the stamp on."""
    async with platform.db.write(tenant) as conn:
        revision = await _advance(conn, stored.revision, by)
        await _write(conn, stored, change, revision, by)
    _ENGINES.of(platform).pop(tenant)  # here at once, even if the stamp cannot be written
    await _new_stamp(platform, tenant)
    return revision


class _Moved(Exception):
    """Another change was written since this one read the revision."""


async def _advance(conn: AsyncConnection, base: int, by: str) -> int:
    result = await conn.execute(
        update(policy_state)
        .where(policy_state.c.id == _STATE_ROW, policy_state.c.revision == base)
        .values(revision=base + 1, updated_at=utcnow(), updated_by=by)
    )
    if result.rowcount != 1:
        raise _Moved
    return base + 1


async def _write(
    conn: AsyncConnection, stored: Stored, change: Change, revision: int, by: str
) -> None:
    now = utcnow()
    log: list[dict[str, Any]] = []
    for candidate in change.puts:
        if stored.documents.get(candidate.key) == candidate.document:
            continue  # sent again unchanged: no new version
        values = _row(candidate, revision, now, by)
        if candidate.key in stored.documents:
            await conn.execute(
                update(policies).where(policies.c.key == candidate.key).values(**values)
            )
        else:
            await conn.execute(insert(policies).values(key=candidate.key, **values))
        log.append(_logged(revision, candidate.key, "put", candidate.document, now, by))
    if change.deletes:
        await conn.execute(delete(policies).where(policies.c.key.in_(change.deletes)))
        log.extend(_logged(revision, key, "delete", None, now, by) for key in change.deletes)
    if change.globals is not None:
        await conn.execute(
            update(policy_state)
            .where(policy_state.c.id == _STATE_ROW)
            .values(globals=change.globals)
        )
        log.append(_logged(revision, "", "globals", change.globals, now, by))
    if log:
        await conn.execute(insert(policy_changes), log)


def _row(candidate: Candidate, revision: int, now: datetime, by: str) -> dict[str, Any]:
    return {
        "kind": candidate.kind,
        "name": candidate.name,
        "version": candidate.version,
        "scope": candidate.scope,
        "disabled": candidate.disabled,
        "document": candidate.document,
        "revision": revision,
        "updated_at": now,
        "updated_by": by,
    }


def _logged(
    revision: int, key: str, change: str, document: Any, at: datetime, by: str
) -> dict[str, Any]:
    return {
        "revision": revision,
        "key": key,
        "change": change,
        "document": document,
        "at": at,
        "by": by,
    }
