"""Idempotency keys: a request retried with the same `Idempotency-Key` runs once.

The first request with a key records that it is running, then its answer (success, or a 4xx
that a retry would only repeat), in the KV store (SQL, or Redis when replicas share one), with
`idempotency_ttl`. The door checks the caller's access to the operation before the record is
looked up. A retry gets that answer back; a retry while the first still runs gets 409; the
same key with a different request gets 400. Server errors and rate limits are not recorded, so
a retry after them runs again.

A record keeps no secret at rest, though answers carry some (`auth.login` tokens, the key of
`api_keys.create`). Three values are derived (HKDF-SHA256) from the idempotency key, which only
the client holds, salted by a server key and bound to the tenant and the credential (API key
or session): the record's KV key, a MAC key that fingerprints the request (a plain hash of a
login body would let a store reader test passwords), and the AES-256-GCM key that seals the
answer. A replay with the same idempotency key opens the answer; without that key, the store
(even with the server's keys) opens nothing.

Record writes (`answered_in_write` operations: database.create, update, delete) keep their
records in the tenant's own database instead (`roost_idempotency_answers`), written in the
transaction of the write itself (`Context.pending_answer`): the change and the record of its
answer commit together or not at all, so a crash between them cannot leave a key that answers
409 until it expires, and a keyed write costs one small insert rather than two commits of the
KV store. A concurrent request with the same key finds the record on its own insert (its
write rolls back) and replays it. A key is looked up in the store of its operation only: the
same key sent to a record write and to another operation is not seen as reused.
"""

from __future__ import annotations

import base64
import functools
import hmac
import importlib
import os
import random
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import Connection, bindparam, delete, select, update

from roost.backends.sql.tables import idempotency_answers as answers
from roost.errors import APIError, ConflictError, ServerError, ValidationError
from roost.services.context import Context

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from roost.backends.sql import Database

# `cryptography` is imported by the first request that carries an Idempotency-Key, not when
# the server starts.

KEY_PATTERN = r"^[A-Za-z0-9_.:-]{8,128}$"
_KEY = re.compile(KEY_PATTERN)
_SPACE = "$idempotency:"  # KV keys of tenants start with the tenant name, never with "$"
_NOT_RECORDED = {408, 409, 429}
_NONCE = 12

Outcome = tuple[int, Any]


def slot_prefix(tenant: str) -> str:
    """The start of the KV key of every idempotency record of `tenant` (purged with it)."""
    return f"{_SPACE}{tenant}:"


async def run_once(
    ctx: Context,
    key: str,
    request: bytes,
    call: Callable[[], Awaitable[Outcome]],
    *,
    in_write: bool = False,
) -> Outcome:
    """Run `call` unless a request with `key` already ran; then return its recorded outcome.
    `in_write`: the call's operation is `answered_in_write` (see the module's docstring)."""
    if not _KEY.match(key):
        raise ValidationError(
            "Idempotency-Key must be 8-128 letters, digits or _ . : -",
            details={"field": "Idempotency-Key"},
        )
    record = _Record.derive(ctx, key)
    fingerprint = record.fingerprint(request)
    if in_write:
        return await _run_in_write(ctx, record, fingerprint, call)
    kv, ttl = ctx.platform.kv, ctx.platform.settings.idempotency_ttl
    running = msgspec.json.encode(_Stored(fingerprint)).decode()
    if not await kv.set(record.slot, running, ttl=ttl, nx=True):
        entry = await kv.get(record.slot)
        if entry is not None:
            stored = msgspec.json.decode(entry.value, type=_Stored)
            sealed = None if stored.sealed is None else base64.b64decode(stored.sealed)
            return record.replay(stored.request, sealed, fingerprint)
        if not await kv.set(record.slot, running, ttl=ttl, nx=True):  # it expired just now
            raise ConflictError(
                "a request with this Idempotency-Key is running; retry later",
                code="idempotency_in_progress",
            )
    try:
        status, payload = await call()
    except APIError as exc:
        if (recorded := _recorded_status(exc)) is not None:
            await record.save(ctx, fingerprint, recorded, {"error": exc.to_dict()})
        else:
            await kv.delete([record.slot])
        raise
    except BaseException:
        await kv.delete([record.slot])
        raise
    await record.save(ctx, fingerprint, status, payload)
    return status, payload


def _recorded_status(exc: APIError) -> int | None:
    """The status of an error that a retry would only get again, so that it is the answer
    recorded; None for one that is not recorded (a retry runs again)."""
    status = exc.status_code
    return status if status is not None and status < 500 and status not in _NOT_RECORDED else None


async def _run_in_write(
    ctx: Context, record: _Record, fingerprint: str, call: Callable[[], Awaitable[Outcome]]
) -> Outcome:
    """`run_once` of an `answered_in_write` call: its record goes into the tenant's database
    with the write that answers it (`_Pending`). A retry is not looked up first: its write
    claims the record before it changes anything, meets the first one there and rolls back,
    and the recorded answer is replayed (one read less for every first request)."""
    db, tenant = ctx.platform.db, ctx.tenant
    pending = _Pending(record, fingerprint, ctx.platform.settings.idempotency_ttl)
    ctx.pending_answer = pending
    try:
        status, payload = await call()
    except AlreadyAnswered:  # the key's record is there: its answer
        return await pending.replay(db, tenant)
    except APIError as exc:
        # refused before its write or by it (which rolled back): the answer is kept apart,
        # unless the key has one already (a retry of a refusal that could change meanwhile)
        if (recorded := _recorded_status(exc)) is not None:
            error = {"error": exc.to_dict()}
            if not await db.run(
                tenant, lambda conn: pending.keep(conn, recorded, error), write=True
            ):
                return await pending.replay(db, tenant)
        raise
    finally:
        ctx.pending_answer = None
    if pending.written:
        return status, payload
    # the call answered without a write (none is known to): its answer is kept apart
    if await db.run(tenant, lambda conn: pending.keep(conn, status, payload), write=True):
        return status, payload
    return await pending.replay(db, tenant)


def hkdf_sha256(*, salt: bytes, key: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 (RFC 5869), the same bytes as `cryptography`'s HKDF. Written out on the
    standard library's HMAC because every keyed request derives its record: `cryptography`'s
    HKDF cost ~50 µs of the server's CPU a request (OpenSSL looks its algorithms up again on
    every object), these four HMACs a tenth of that."""
    if not 0 < length <= 255 * 32:
        raise ValueError("HKDF-SHA256 gives 1 to 8160 bytes")
    pseudorandom = hmac.digest(salt or bytes(32), key, "sha256")
    block, blocks = b"", []
    for counter in range(1, -(-length // 32) + 1):
        block = hmac.digest(pseudorandom, block + info + bytes([counter]), "sha256")
        blocks.append(block)
    return b"".join(blocks)[:length]


@functools.cache
def _aesgcm() -> type[AESGCM]:
    """`cryptography`'s AESGCM, imported by the first request that carries an
    Idempotency-Key rather than when the server starts, and looked up once."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM


def _credential_of(ctx: Context) -> str:
    """The credential a record belongs to: an API key, a session, else the user (a minted
    token), a running function, or an anonymous client address. Another credential of the
    same user, a narrower API key or function above all, never finds the record."""
    principal = ctx.principal
    if principal is None:
        return f"anonymous@{ctx.client_address}"
    if principal.function is not None:  # a running function: narrower than its caller
        limits = "|".join(",".join(sorted(scopes)) for scopes in principal.limits)
        return f"{principal.user_id}\0function:{principal.function}:{limits}"
    if principal.api_key_id is not None:
        return f"{principal.user_id}\0key:{principal.api_key_id}"
    if principal.session_id is not None:
        return f"{principal.user_id}\0session:{principal.session_id}"
    return f"{principal.user_id}\0user"


class _Stored(msgspec.Struct, omit_defaults=True):
    """What the KV store holds: the request's MAC, then the sealed answer (base64)."""

    request: str
    sealed: str | None = None


class _Answer(msgspec.Struct, array_like=True):
    status: int
    body: Any


class _Record(msgspec.Struct, frozen=True):
    """One idempotency record: where it lives and the keys that read it, all from the key."""

    slot: str
    mac_key: bytes
    aead: AESGCM

    @classmethod
    def derive(cls, ctx: Context, key: str) -> _Record:
        who = _credential_of(ctx)
        okm = hkdf_sha256(
            salt=ctx.platform.access_tokens.derive("idempotency"),
            key=key.encode(),
            info=b"roost idempotency v1\0" + f"{ctx.tenant}\0{who}".encode(),
            length=96,
        )
        return cls(slot_prefix(ctx.tenant) + okm[:32].hex(), okm[32:64], _aesgcm()(okm[64:]))

    def fingerprint(self, request: bytes) -> str:
        return hmac.digest(self.mac_key, request, "sha256").hex()

    async def save(self, ctx: Context, fingerprint: str, status: int, body: Any) -> None:
        sealed = self.seal(fingerprint, status, body)
        stored = _Stored(fingerprint, base64.b64encode(sealed).decode())
        await ctx.platform.kv.set(
            self.slot,
            msgspec.json.encode(stored).decode(),
            ttl=ctx.platform.settings.idempotency_ttl,
        )

    def seal(self, fingerprint: str, status: int, body: Any) -> bytes:
        nonce = os.urandom(_NONCE)
        # MessagePack, not JSON: a `bytes` value replays as bytes (a MessagePack answer
        # carries it as binary; JSON made it a base64 string)
        plain = msgspec.msgpack.encode(_Answer(status, body))
        return nonce + self.aead.encrypt(nonce, plain, self._bound(fingerprint))

    def replay(self, request: str, sealed: bytes | None, fingerprint: str) -> Outcome:
        """The answer recorded for the request whose MAC is `request` (`sealed`: None while
        it runs), if this request is that one."""
        if not hmac.compare_digest(request, fingerprint):
            raise ValidationError(
                "this Idempotency-Key was used for a different request; use a new key",
                details={"field": "Idempotency-Key"},
            )
        if sealed is None:
            raise ConflictError(
                "a request with this Idempotency-Key is still running; retry later",
                code="idempotency_in_progress",
            )
        from cryptography.exceptions import InvalidTag

        try:
            plain = self.aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], self._bound(fingerprint))
        except InvalidTag:
            raise ServerError(
                "the recorded answer for this Idempotency-Key does not open; use a new key"
            ) from None
        try:
            answer = msgspec.msgpack.decode(plain, type=_Answer)
        except msgspec.DecodeError:  # sealed as JSON, before MessagePack (until they expire)
            answer = msgspec.json.decode(plain, type=_Answer)
        return answer.status, answer.body

    def _bound(self, fingerprint: str) -> bytes:
        # associated data: a sealed answer copied to another record or request does not open
        return f"{self.slot}\0{fingerprint}".encode()


class AlreadyAnswered(Exception):
    """A concurrent request with the same Idempotency-Key recorded its answer first: the write
    that met it rolls back, and the call answers what was recorded."""


# The tenant's records of `answered_in_write` calls (`roost_idempotency_answers`), keyed by
# the slot's own part (the table is the tenant's). A claim that finds a live record changes
# nothing (no row counted); one that finds an expired record takes its place.
_STORED = select(answers.c.request, answers.c.sealed).where(
    answers.c.slot == bindparam("slot"), answers.c.expires_at > bindparam("now")
)
_COLUMNS = ("slot", "request", "sealed", "expires_at")


@functools.cache
def _claim(dialect: str) -> Any:
    """The claim's statement in the dialect's own INSERT ... ON CONFLICT (built once, when the
    dialect is first used: a server on SQLite never loads the PostgreSQL dialect)."""
    insert = importlib.import_module(f"sqlalchemy.dialects.{dialect}").insert(answers)
    insert = insert.values({c: bindparam(c) for c in _COLUMNS})
    return insert.on_conflict_do_update(
        index_elements=[answers.c.slot],
        set_={c: insert.excluded[c] for c in _COLUMNS[1:]},
        where=answers.c.expires_at <= bindparam("now"),
    )


_ANSWER = (
    update(answers).where(answers.c.slot == bindparam("slot_")).values(sealed=bindparam("sealed"))
)
_CLAIM_ON_DRIVER = (
    "INSERT INTO roost_idempotency_answers (slot, request, sealed, expires_at) "
    "VALUES (?, ?, ?, ?) ON CONFLICT (slot) DO UPDATE SET request = excluded.request, "
    "sealed = excluded.sealed, expires_at = excluded.expires_at "
    "WHERE roost_idempotency_answers.expires_at <= ?"
)
_ANSWER_ON_DRIVER = "UPDATE roost_idempotency_answers SET sealed = ? WHERE slot = ?"
_SWEEP = 200  # expired records a claim removes at most (one claim in 100 sweeps)
# The outer condition is checked again on PostgreSQL on a row another transaction changed
# meanwhile (the subquery is not): a record claimed again since it expired is left alone.
# Rows another sweep holds are skipped, not waited for (two sweeps could deadlock).
_EXPIRED = (
    select(answers.c.slot)
    .where(answers.c.expires_at <= bindparam("now"))
    .limit(_SWEEP)
    .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has one writer
)
_SWEEP_EXPIRED = delete(answers).where(
    answers.c.slot.in_(_EXPIRED), answers.c.expires_at <= bindparam("now")
)
_SWEEP_ON_DRIVER = (
    "DELETE FROM roost_idempotency_answers WHERE slot IN (SELECT slot FROM "
    "roost_idempotency_answers WHERE expires_at <= ? LIMIT 200)"  # _SWEEP
)


class _Pending(msgspec.Struct):
    """The record of one `answered_in_write` call, for the write that answers it: `claim` as
    the write begins (a concurrent request with the key is met before it changes anything),
    `answer` once it has its rows, both in its transaction."""

    record: _Record
    fingerprint: str
    ttl: int
    written: bool = False

    @property
    def slot(self) -> str:
        return self.record.slot.rpartition(":")[2]  # the tenant's own table: no prefix

    def claim(self, conn: Connection | sqlite3.Connection) -> None:
        """Insert the record, its answer still to come; AlreadyAnswered if a live one is
        there (committed, or on PostgreSQL committed meanwhile by the request it waited on)."""
        now = time.time()
        if isinstance(conn, sqlite3.Connection):
            values = (self.slot, self.fingerprint, b"", now + self.ttl, now)
            claimed = conn.execute(_CLAIM_ON_DRIVER, values).rowcount
            if claimed and random.random() < 0.01:
                conn.execute(_SWEEP_ON_DRIVER, (now,))
        else:
            params = {
                "slot": self.slot,
                "request": self.fingerprint,
                "sealed": b"",
                "expires_at": now + self.ttl,
                "now": now,
            }
            claimed = conn.execute(_claim(conn.dialect.name), params).rowcount
            if claimed and random.random() < 0.01:
                conn.execute(_SWEEP_EXPIRED, {"now": now})
        if not claimed:
            raise AlreadyAnswered

    def answer(self, conn: Connection | sqlite3.Connection, status: int, body: Any) -> None:
        """Seal the answer into the claimed record."""
        sealed = self.record.seal(self.fingerprint, status, body)
        if isinstance(conn, sqlite3.Connection):
            conn.execute(_ANSWER_ON_DRIVER, (sealed, self.slot))
        else:
            conn.execute(_ANSWER, {"sealed": sealed, "slot_": self.slot})
        self.written = True

    def keep(self, conn: Connection, status: int, body: Any) -> bool:
        """Claim and answer in a transaction of their own, for an answer no write took;
        False (nothing written) if the key has a record already."""
        try:
            self.claim(conn)
        except AlreadyAnswered:
            return False
        self.answer(conn, status, body)
        return True

    async def replay(self, db: Database, tenant: str) -> Outcome:
        """The answer recorded for the key, if this request is the one it answered."""
        found = await db.first_row(tenant, _STORED, {"slot": self.slot, "now": time.time()})
        if found is None:  # expired since the claim met it: not run, nothing to replay
            raise ConflictError(
                "a request with this Idempotency-Key ran at the same time; retry",
                code="idempotency_in_progress",
            )
        return self.record.replay(found[0], bytes(found[1]) or None, self.fingerprint)
