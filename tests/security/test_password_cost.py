"""The password hash cost is a setting, and stored hashes follow it.

The scenario: an operator raises (or lowers) the argon2id cost of a running deployment. Users
whose hashes were made at the old cost must still sign in, and each sign-in must store the
password again at the new cost, so that old, weaker hashes do not stay in the database for
whoever steals it. Runs on SQLite and PostgreSQL (the hash is read around the server).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from roost import AsyncClient, AuthenticationError
from roost.errors import ConfigurationError
from tests.conftest import POSTGRES_URL, RunningServer, platform_of, unique

pytestmark = pytest.mark.anyio

PASSWORD = "a-long-password-1"


async def stored_hash(running: RunningServer, username: str) -> str:
    """The password hash the database holds for a user of the default tenant."""
    db = platform_of(running).db
    query = "SELECT password_hash FROM {table} WHERE username = {param}"
    if running.backend == "postgresql":
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            table = f'"{db.schema_of("default")}".roost_users'
            value = await conn.fetchval(query.format(table=table, param="$1"), username)
        finally:
            await conn.close()
        return str(value)
    with sqlite3.connect(db.sqlite_path_of("default")) as raw:
        row = raw.execute(query.format(table="roost_users", param="?"), (username,)).fetchone()
    return str(row[0])


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_sign_in_rehashes_a_password_made_at_another_cost(
    make_server: Callable[..., RunningServer], tmp_path: Path, backend: str
) -> None:
    data_dir = tmp_path / "shared"
    old = make_server(backend, data_dir=data_dir, password_hash_memory_kib=2048)
    name = unique("cost")
    async with AsyncClient(api_url=old.url, max_retries=0) as client:
        await client.auth.register(name, PASSWORD)
    assert (await stored_hash(old, name)).startswith("$argon2id$v=19$m=2048,t=1,p=1$")
    old.stop()

    same_database = {"pg_schema_prefix": old.settings.pg_schema_prefix}
    new = make_server(
        backend,
        data_dir=data_dir,
        password_hash_memory_kib=1024,
        password_hash_time_cost=2,
        **(same_database if backend == "postgresql" else {}),
    )
    async with AsyncClient(api_url=new.url, max_retries=0) as client:
        with pytest.raises(AuthenticationError):
            await client.auth.sign_in_with_password(name, "not-the-password")
        assert (await stored_hash(new, name)).startswith("$argon2id$v=19$m=2048,t=1,p=1$")
        signed_in = await client.auth.sign_in_with_password(name, PASSWORD)
        assert (await signed_in.auth.get_current_user())["username"] == name
        rehashed = await stored_hash(new, name)
        assert rehashed.startswith("$argon2id$v=19$m=1024,t=2,p=1$")
        await client.auth.sign_in_with_password(name, PASSWORD)
        assert await stored_hash(new, name) == rehashed  # made once, not at every sign-in


async def test_an_unknown_user_is_refused_like_a_wrong_password(
    make_server: Callable[..., RunningServer],
) -> None:
    running = make_server(password_hash_memory_kib=2048, password_hash_time_cost=2)
    async with AsyncClient(api_url=running.url, max_retries=0) as client:
        with pytest.raises(AuthenticationError) as unknown:
            await client.auth.sign_in_with_password(unique("nobody"), PASSWORD)
        with pytest.raises(AuthenticationError) as wrong:
            await client.auth.sign_in_with_password("admin", "not-the-password")
    assert (unknown.value.code, str(unknown.value)) == (wrong.value.code, str(wrong.value))


def test_a_hash_cost_below_argon2s_minimum_is_refused_naming_the_setting(
    make_server: Callable[..., RunningServer],
) -> None:
    with pytest.raises(ConfigurationError, match="ROOST_PASSWORD_HASH_PARALLELISM"):
        make_server(password_hash_memory_kib=8, password_hash_parallelism=2)
