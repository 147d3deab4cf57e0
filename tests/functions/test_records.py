"""The records of sync runs, written just after their answer (`services/functions/records.py`),
on a real platform (SQLite): the run ends for its token at once, a record that cannot be kept
costs only itself, and what is pending at shutdown is written."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import select

from roost.backends.sql.tables import function_invocations, functions, utcnow
from roost.errors import AuthenticationError
from roost.server.platform import open_platform
from roost.services import accounts, principals
from roost.services.context import Platform
from roost.services.functions.records import MAX_PENDING, PendingRecord
from roost.services.functions.tokens import (
    CallerRef,
    RuntimeClaims,
    RuntimeTokens,
    attempt_stamp,
    canonical_spelling,
)
from roost.services.tenants import DEFAULT_TENANT
from roost.settings import Settings, load_settings
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, FAST_PASSWORD_HASH

pytestmark = pytest.mark.anyio


def settings_of(tmp_path: Path) -> Settings:
    return load_settings(
        data_dir=tmp_path / "data",
        secret_key="k" * 40,
        admin_username=ADMIN_USERNAME,
        admin_password=ADMIN_PASSWORD,
        **FAST_PASSWORD_HASH,
        functions_enabled=False,  # the records are written here, not by runs
    )


async def a_function(platform: Platform) -> str:
    function_id = secrets.token_hex(16)
    async with platform.db.write(DEFAULT_TENANT) as conn:
        await conn.execute(
            functions.insert().values(
                id=function_id,
                name=f"fn{function_id[:8]}",
                app="default",
                description="",
                active_version=1,
                latest_version=1,
                created_by=ADMIN_USERNAME,
            )
        )
    return function_id


def record_of(platform: Platform, function_id: str, token: str | None = None) -> PendingRecord:
    now = utcnow()
    run_id = secrets.token_hex(16)
    row = {
        "id": run_id,
        "function_id": function_id,
        "function_name": "fn",
        "version": 1,
        "mode": "sync",
        "timeout": 10.0,
        "params": None,
        "user_id": "u",
        "username": ADMIN_USERNAME,
        "session_id": None,
        "api_key_id": None,
        "limits": None,
        "created_at": now,
        "started_at": now,
        "status": "SUCCESS",
        "result": "1",
        "error": None,
        "traceback": None,
        "logs": "[]",
        "duration_ms": 1,
        "finished_at": now,
    }
    return PendingRecord(
        DEFAULT_TENANT, run_id, lambda: (row, []), token, platform.clock.time() + 40
    )


def token_of(platform: Platform, user_id: str, run_id: str) -> str:
    return RuntimeTokens(platform.access_tokens).issue(
        RuntimeClaims(
            tenant=DEFAULT_TENANT,
            caller=CallerRef(user_id),
            limits=(frozenset({"*"}),),
            function="fn",
            execution_id=run_id,
            expires_at=platform.clock.time() + 40,
        )
    )


async def acts(platform: Platform, token: str) -> bool:
    """Whether the token acts; refused, only as a run that is over."""
    try:
        await principals.authenticate(platform, principals.Credential("jwt", token))
    except AuthenticationError as exc:
        return exc.code != "token_expired" and _unexpected(exc)
    return True


def _unexpected(exc: AuthenticationError) -> bool:
    raise AssertionError(f"refused for another reason: {exc}")


async def kept(platform: Platform) -> set[str]:
    async with platform.db.read(DEFAULT_TENANT) as conn:
        return set((await conn.scalars(select(function_invocations.c.id))).all())


async def test_a_run_ends_for_its_token_before_its_record_is_written(tmp_path: Path) -> None:
    async with open_platform(settings_of(tmp_path)) as platform:
        async with platform.db.read(DEFAULT_TENANT) as conn:
            admin = (await accounts.find_by_username(conn, ADMIN_USERNAME))["id"]
        function_id = await a_function(platform)
        live = token_of(platform, admin, "a-run-going-on")
        assert await acts(platform, live)
        ended = record_of(platform, function_id)
        token = token_of(platform, admin, ended.id)
        ended = PendingRecord(DEFAULT_TENANT, ended.id, ended.rows, token, ended.token_expires_at)
        async with platform.db.write(DEFAULT_TENANT):  # the record waits for this to end
            await platform.function_records.add(platform, ended)
            assert ended.id not in await kept(platform)
            assert not await acts(platform, token)  # at once, though not written yet
        await platform.function_records.flush()
        assert ended.id in await kept(platform)
        assert not await acts(platform, token)  # the record says so now


async def test_a_record_that_cannot_be_kept_costs_only_itself(tmp_path: Path) -> None:
    async with open_platform(settings_of(tmp_path)) as platform:
        records = platform.function_records
        function_id = await a_function(platform)
        good = [record_of(platform, function_id) for _ in range(3)]
        orphan = record_of(platform, "a-function-deleted-meanwhile")  # the foreign key refuses it
        for record in (good[0], orphan, *good[1:]):
            await records.add(platform, record)
        await records.flush()
        assert await kept(platform) == {record.id for record in good}
        now = platform.clock.time()
        assert not any(records.ended(record.id, now) for record in good)
        # never written: its run stays ended here until its token expires
        orphan_id = orphan.id
        assert records.ended(orphan_id, now)
        assert not records.ended(orphan_id, orphan.token_expires_at)


async def test_records_pending_at_shutdown_are_written(tmp_path: Path) -> None:
    settings = settings_of(tmp_path)
    async with open_platform(settings) as platform:
        record = record_of(platform, await a_function(platform))
        await platform.function_records.add(platform, record)
    async with open_platform(settings) as platform:
        assert await kept(platform) == {record.id}


async def test_only_tokens_presented_during_their_run_are_taken_at_its_end(
    tmp_path: Path,
) -> None:
    """A server without Redis forgets at a run's end only the tokens it loaded meanwhile:
    a load notes the run before it waits, a refused load un-notes it, unless a load of the
    same token succeeded before (it may be cached)."""
    async with open_platform(settings_of(tmp_path)) as platform:
        records = platform.function_records
        assert platform.sole_server
        async with platform.db.read(DEFAULT_TENANT) as conn:
            admin = (await accounts.find_by_username(conn, ADMIN_USERNAME))["id"]
        used = token_of(platform, admin, "used")
        assert await acts(platform, used)
        assert not records.take_presented(platform, "unused")  # issued, never presented
        assert records.take_presented(platform, "used")
        assert not records.take_presented(platform, "used")  # taken once
        nobody = token_of(platform, "no-such-user", "refused")
        with pytest.raises(AuthenticationError):
            await principals.authenticate(platform, principals.Credential("jwt", nobody))
        assert not records.take_presented(platform, "refused")  # nothing of it is cached
        until = platform.clock.time() + 40
        records.loaded(records.presented(platform, "cached", until))
        second = records.presented(platform, "cached", until)  # refused or cancelled
        records.not_loaded("cached", second)
        assert records.take_presented(platform, "cached")  # the first load's entry may stay
        # after a revocation two loads of one token can overlap: the first one's refusal
        # must not forget a run whose other load then succeeds (and is cached)
        first = records.presented(platform, "overlapping", until)
        second = records.presented(platform, "overlapping", until)
        records.not_loaded("overlapping", first)
        records.loaded(second)
        assert records.take_presented(platform, "overlapping")
        # a load that ends after its run was taken counts down its own entry, not a later one
        late = records.presented(platform, "late", until)
        assert records.take_presented(platform, "late")
        again = records.presented(platform, "late", until)
        records.not_loaded("late", late)
        assert again is not None
        assert again.loading == 1
        records.not_loaded("late", again)
        assert not records.take_presented(platform, "late")


async def test_presented_runs_that_end_elsewhere_go_once_their_tokens_expire(
    tmp_path: Path,
) -> None:
    """Runs of an embedded `roost worker` end in that process: the server never takes their
    notes again, so they are dropped once their tokens have expired (never unbounded)."""
    async with open_platform(settings_of(tmp_path)) as platform:
        records = platform.function_records
        now = platform.clock.time()
        for number in range(MAX_PENDING):
            records.presented(platform, f"expired-{number}", now - 1)
        records.presented(platform, "live", now + 40)
        assert not records.take_presented(platform, "expired-0")
        assert records.take_presented(platform, "live")


async def test_a_runtime_token_has_one_spelling(tmp_path: Path) -> None:
    """PyJWT reads a token with `=` after it, or another spelling of its parts: each would be
    a principal cache entry of its own, left acting when the run's end forgets the token."""
    async with open_platform(settings_of(tmp_path)) as platform:
        async with platform.db.read(DEFAULT_TENANT) as conn:
            admin = (await accounts.find_by_username(conn, ADMIN_USERNAME))["id"]
        token = token_of(platform, admin, "a-run-going-on")
        assert canonical_spelling(token)
        assert await acts(platform, token)
        header, body, signature = token.removeprefix("rft_").split(".")
        for spelling in (
            token + "=",
            token + "==",
            f"rft_{header}=.{body}.{signature}",
            f"rft_{header}.{body}.{signature[:-1]}{'-' if signature[-1] != '-' else '_'}",
            f"rft_{header}.{body}.{signature} ",
            f"rft_{header}.{body}.{signature}.",
        ):
            assert not canonical_spelling(spelling), spelling
            with pytest.raises(AuthenticationError) as refused:
                await principals.authenticate(platform, principals.Credential("jwt", spelling))
            assert refused.value.code == "invalid_credentials", spelling


async def test_a_queued_runs_token_names_its_attempt(tmp_path: Path) -> None:
    """A token issued for an attempt of a queued run reads back with it; a token whose attempt
    is not a whole number is no runtime token."""
    async with open_platform(settings_of(tmp_path)) as platform:
        tokens = RuntimeTokens(platform.access_tokens)
        started = utcnow()
        claims = RuntimeClaims(
            tenant=DEFAULT_TENANT,
            caller=CallerRef("u"),
            limits=(),
            function="fn",
            execution_id="run",
            expires_at=platform.clock.time() + 40,
            attempt=attempt_stamp(started),
        )
        assert tokens.read(tokens.issue(claims)).attempt == attempt_stamp(started)
        assert attempt_stamp(started) != attempt_stamp(started + timedelta(microseconds=1))
        plain = msgspec.structs.replace(claims, attempt=None)
        assert tokens.read(tokens.issue(plain)).attempt is None  # sync and streamed runs
        odd = msgspec.structs.replace(claims, attempt=1.5)
        with pytest.raises(AuthenticationError):
            tokens.read(tokens.issue(odd))
