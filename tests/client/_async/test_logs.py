"""Structured logs through the SDK, on SQLite and PostgreSQL: writing at each level with the
caller recorded, batches, queries and their filters, and each refusal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from roost import AsyncClient, AuthorizationError, ValidationError
from tests.client._async.calls import Call, wait_until
from tests.conftest import ADMIN_USERNAME, RunningServer, unique


@pytest.mark.anyio
async def test_each_level_is_written_with_where_it_came_from(
    server: RunningServer, admin_token: str
) -> None:
    category = unique("orders")
    async with AsyncClient(api_url=server.url) as client:
        logs = (await client.auth.sign_in_with_token(admin_token)).logs
        await logs.debug("looked up", {"key": "user:1"}, category=category)
        await logs.info("order placed", {"order_id": 42}, category=category)
        await logs.notice("price list reloaded", category=category)
        await logs.warn("slow provider", {"ms": 2300}, category=category)
        try:
            raise ValueError("bad total")
        except ValueError as exc:
            await logs.error("order refused", {"order_id": 43}, category=category, exception=exc)
        await logs.critical("all down", category=category, exception="no traceback, a note")
        page = await logs.query(category=category)
        entries = page["entries"]
        assert [e["level"] for e in entries] == [
            "critical",
            "error",
            "warn",
            "notice",
            "info",
            "debug",
        ]
        error = entries[1]
        assert (error["message"], error["data"], error["username"]) == (
            "order refused",
            {"order_id": 43},
            ADMIN_USERNAME,
        )
        assert "ValueError: bad total" in error["exception"]
        assert error["source"]["function"] == "test_each_level_is_written_with_where_it_came_from"
        assert error["source"]["file"].endswith("test_logs.py")
        assert entries[0]["exception"] == "no traceback, a note"
        assert page["next_cursor"] is None


@pytest.mark.anyio
async def test_queries_filter_by_level_text_time_and_page(
    server: RunningServer, admin_token: str
) -> None:
    category = unique("batch")
    async with AsyncClient(api_url=server.url) as client:
        logs = (await client.auth.sign_in_with_token(admin_token)).logs
        before = datetime.now(UTC) - timedelta(seconds=1)
        written = await logs.batch(
            [
                {"level": "info" if n % 3 else "error", "message": f"Row {n} imported"}
                | {"category": category}
                for n in range(10)
            ]
        )
        assert written == 10
        everything = (await logs.query(category=category, limit=100))["entries"]
        assert [e["message"] for e in everything] == [f"Row {n} imported" for n in range(9, -1, -1)]
        assert everything[0]["source"]["function"] == (
            "test_queries_filter_by_level_text_time_and_page"
        )
        errors = await logs.query(category=category, level="warn")
        assert [e["message"] for e in errors["entries"]] == [
            "Row 9 imported",
            "Row 6 imported",
            "Row 3 imported",
            "Row 0 imported",
        ]
        found = await logs.query(category=category, search="ROW 7")
        assert [e["message"] for e in found["entries"]] == ["Row 7 imported"]
        assert (await logs.query(category=category, since=datetime.now(UTC) + timedelta(1)))[
            "entries"
        ] == []
        window = await logs.query(
            category=category, since=before, until=datetime.now(UTC) + timedelta(1)
        )
        assert len(window["entries"]) == 10
        seen = []
        page = await logs.query(category=category, limit=4)
        while True:
            seen += [e["message"] for e in page["entries"]]
            if page["next_cursor"] is None:
                break
            page = await logs.query(category=category, limit=4, cursor=page["next_cursor"])
        assert seen == [e["message"] async for e in logs.iter(category=category, limit=4)]
        assert seen == [e["message"] for e in everything]


@pytest.mark.anyio
async def test_bad_entries_are_refused_naming_the_field_and_nothing_is_written(
    server: RunningServer, admin_token: str
) -> None:
    category = unique("bad")
    async with AsyncClient(api_url=server.url) as client:
        logs = (await client.auth.sign_in_with_token(admin_token)).logs
        refusals: list[tuple[str, Call]] = [
            ("level", lambda: logs.batch([{"level": "loud", "message": "m"}])),
            ("message", lambda: logs.info("")),
            ("category", lambda: logs.info("m", category="has space")),
            ("data", lambda: logs.info("m", {"blob": "x" * 70_000}, category=category)),
            ("entries", lambda: logs.batch([])),
            ("level", lambda: logs.query(level="loud")),
            ("cursor", lambda: logs.query(cursor="nope")),
            ("limit", lambda: logs.query(limit=0)),
        ]
        for field, call in refusals:
            with pytest.raises(ValidationError) as caught:
                await call()
            assert field in str(caught.value.details) + caught.value.message, field
        mixed = [
            {"level": "info", "message": "kept?", "category": category},
            {"level": "info", "message": "m", "data": "x" * 70_000, "category": category},
        ]
        with pytest.raises(ValidationError):
            await logs.batch(mixed)
        assert (await logs.query(category=category))["entries"] == []  # all or nothing


@pytest.mark.anyio
async def test_writing_needs_logs_write_and_reading_logs_read(
    server: RunningServer, admin_token: str
) -> None:
    category = unique("scoped")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        writer_key = await admin.api_keys.create(unique("writer"), ["logs:write"])
        writer = await client.auth.sign_in_with_token(writer_key["key"], "api_key")
        await writer.logs.info("from a service", category=category)
        with pytest.raises(AuthorizationError) as caught:
            await writer.logs.query(category=category)
        assert caught.value.details["scope"] == "logs:read"
        name = unique("member")
        await client.auth.register(name, "member-password")
        member = await client.auth.sign_in_with_password(name, "member-password")
        with pytest.raises(AuthorizationError) as caught:
            await member.logs.info("not allowed", category=category)
        assert caught.value.details["scope"] == "logs:write"
        entries = (await admin.logs.query(category=category))["entries"]
        assert [(e["message"], e["username"]) for e in entries] == [
            ("from a service", ADMIN_USERNAME)
        ]


@pytest.mark.anyio
async def test_tail_delivers_what_is_written_from_now_on_through_its_filters(
    server: RunningServer, admin_token: str
) -> None:
    category = unique("tail")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        await admin.logs.info("before the tail", category=category)
        got: list[dict[str, Any]] = []
        sub = await admin.logs.tail(got.append, level="warn", category=category, search="DISK")
        await admin.logs.batch(
            [
                {"level": "error", "message": "disk full", "category": category},
                {"level": "info", "message": "disk fine", "category": category},  # level
                {"level": "error", "message": "net down", "category": category},  # search
                {"level": "critical", "message": "disk gone", "category": "other"},  # category
                {"level": "warn", "message": "Disk slow", "category": category},
            ]
        )
        await wait_until(lambda: len(got) == 2)
        assert [e["message"] for e in got] == ["disk full", "Disk slow"]
        assert got[0]["id"] < got[1]["id"]
        assert got[0]["username"] == ADMIN_USERNAME
        stored = await admin.logs.query(category=category, level="warn", search="disk")
        assert [e["id"] for e in stored["entries"]] == [e["id"] for e in reversed(got)]
        await sub.unsubscribe()
        reader = await admin.api_keys.create(unique("w"), ["logs:write"])
        writer = await client.auth.sign_in_with_token(reader["key"], "api_key")
        with pytest.raises(AuthorizationError):
            await writer.logs.tail(print)
        with pytest.raises(ValidationError):
            await admin.logs.tail(print, level="loud")
