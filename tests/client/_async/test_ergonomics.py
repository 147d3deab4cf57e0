"""The SDK's conveniences, on SQLite and PostgreSQL: `.iter()` over every paged listing, a
past-the-end cursor, arguments checked before sending, a closed client, and a timeout that
reports what the whole call cost."""

from __future__ import annotations

import pytest

from roost import AsyncClient, RoostError, TimeoutError, ValidationError
from tests.conftest import RunningServer, unique


@pytest.mark.anyio
async def test_iter_walks_every_page_of_each_listing(
    server: RunningServer, admin_token: str
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        table = unique("iter_rows_")
        await admin.schema.add_table(table, [{"name": "n", "type": "integer"}])
        await admin.database.create(table, [{"n": n} for n in range(5)])
        rows = [row["n"] async for row in admin.database.query(table).sort("n").page_size(2).iter()]
        assert rows == [0, 1, 2, 3, 4]

        category = unique("iter")
        entries = [{"level": "info", "message": f"m{n}", "category": category} for n in range(5)]
        await admin.logs.batch(entries)
        messages = [e["message"] async for e in admin.logs.iter(category=category, limit=2)]
        assert sorted(messages) == ["m0", "m1", "m2", "m3", "m4"]  # each once

        prefix = unique("ITER_")
        for n in range(5):
            await admin.secrets.set(f"{prefix}{n}", "v")
        keys = [info["key"] async for info in admin.secrets.iter(prefix=prefix, page_size=2)]
        assert keys == [f"{prefix}{n}" for n in range(5)]

        bucket = unique("iter-")
        await admin.storage.create_bucket(bucket)
        files = admin.storage.from_(bucket)
        await files.upload([{"file": b"x", "name": f"f{n}"} for n in range(5)])
        names = [info["name"] async for info in files.iter(page_size=2)]
        assert names == [f"f{n}" for n in range(5)]
        assert [i["name"] async for i in admin.files.iter(bucket)] == names

        who = unique("iteruser")
        for n in range(3):
            await admin.users.create_user(f"{who}{n}", "a-long-password-1")
        users = [u["username"] async for u in admin.users.iter(search=who, page_size=2)]
        assert sorted(users) == [f"{who}{n}" for n in range(3)]


@pytest.mark.anyio
async def test_a_last_pages_cursor_is_refused_never_the_first_page_again(
    server: RunningServer, admin_token: str
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        category = unique("cursor")
        await admin.logs.info("only entry", category=category)
        page = await admin.logs.query(category=category)
        assert len(page["entries"]) == 1
        assert page["next_cursor"] is None
        with pytest.raises(ValidationError) as caught:
            await admin.logs.query(category=category, cursor=page["next_cursor"])
        assert (caught.value.code, caught.value.details["field"]) == ("no_more_pages", "cursor")
        with pytest.raises(ValidationError):
            await admin.secrets.list_secrets(cursor=None)


@pytest.mark.anyio
async def test_a_string_where_a_datetime_belongs_is_refused_by_name_before_sending(
    server: RunningServer, admin_token: str
) -> None:
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        with pytest.raises(ValidationError) as caught:
            await admin.logs.query(since="yesterday")  # type: ignore[arg-type]
        assert caught.value.details["field"] == "since"
        assert "since must be a datetime, not str" in str(caught.value)
        with pytest.raises(ValidationError) as caught:
            await admin.users.assign_roles(["r"], ["u"], expires_at="2030-01-01")  # type: ignore[arg-type]
        assert caught.value.details["field"] == "expires_at"
        with pytest.raises(ValidationError) as caught:
            await admin.usage.get("day", since=1700000000)  # type: ignore[arg-type]
        assert caught.value.details["field"] == "since"


@pytest.mark.anyio
async def test_a_closed_client_refuses_with_a_roost_error(server: RunningServer) -> None:
    client = AsyncClient(api_url=server.url)
    await client.health.check()
    await client.close()
    with pytest.raises(RoostError) as caught:
        await client.health.check()
    assert caught.value.code == "client_closed"


@pytest.mark.anyio
async def test_a_timeout_states_the_time_spent_over_every_attempt(silent_port: int) -> None:
    async with AsyncClient(
        api_url=f"http://127.0.0.1:{silent_port}", timeout=1, max_retries=1
    ) as client:
        with pytest.raises(TimeoutError) as caught:
            await client.health.check()
    assert caught.value.details["attempts"] == 2
    # two attempts of 1 s each, plus the backoff between them: never less than 2 s
    assert caught.value.details["elapsed_seconds"] >= 2
    assert "2 attempts over" in str(caught.value)
    assert "retries included" in str(caught.value)
