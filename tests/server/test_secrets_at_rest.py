"""Secrets at rest: what the database holds, the master key, tampering, logs and races."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import sqlite3
from collections.abc import Callable

import asyncpg
import pytest

from roost import AsyncClient, ServerError
from roost.errors import ConfigurationError
from roost.settings import load_settings
from tests.conftest import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    POSTGRES_URL,
    RunningServer,
    platform_of,
    unique,
)

pytestmark = pytest.mark.anyio


async def stored_ciphertexts(running: RunningServer) -> list[bytes]:
    """What the database holds for the default tenant's secret values, read around the server."""
    db = platform_of(running).db
    if running.backend == "postgresql":
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            rows = await conn.fetch(
                f'SELECT ciphertext FROM "{db.schema_of("default")}".roost_secret_versions'
            )
        finally:
            await conn.close()
        return [bytes(row["ciphertext"]) for row in rows]
    with sqlite3.connect(db.sqlite_path_of("default")) as raw:
        return [
            bytes(row[0]) for row in raw.execute("SELECT ciphertext FROM roost_secret_versions")
        ]


def new_master_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


async def _admin(client: AsyncClient) -> AsyncClient:
    return await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_the_database_holds_no_value_in_clear(
    make_server: Callable[..., RunningServer], backend: str
) -> None:
    running = make_server(backend)
    canary = unique("canary-value-")
    async with AsyncClient(api_url=running.url) as client:
        admin = await _admin(client)
        await admin.secrets.set(unique("K"), canary)
        await admin.secrets.update(
            (await admin.secrets.list_secrets())["results"][0]["key"], canary
        )
    sealed = await stored_ciphertexts(running)
    assert len(sealed) == 2
    assert all(canary.encode() not in blob for blob in sealed)
    assert sealed[0][:12] != sealed[1][:12]  # a fresh nonce each time
    if backend == "sqlite":
        files = running.settings.data_dir.rglob("*.db*")
        assert all(canary.encode() not in path.read_bytes() for path in files)


async def test_another_master_key_reads_nothing_and_says_which_key_is_needed(
    make_server: Callable[..., RunningServer], tmp_path: object
) -> None:
    from pathlib import Path

    data_dir, right = Path(str(tmp_path)) / "keyed", new_master_key()
    key = unique("K")
    first = make_server(data_dir=data_dir, master_key=right)
    async with AsyncClient(api_url=first.url) as client:
        await (await _admin(client)).secrets.set(key, "kept")
    first.stop()
    wrong = make_server(data_dir=data_dir, master_key=new_master_key())
    async with AsyncClient(api_url=wrong.url, max_retries=0) as client:
        admin = await _admin(client)
        with pytest.raises(ServerError) as caught:
            await admin.secrets.get_secret(key)
        assert caught.value.code == "wrong_master_key"
        assert "ROOST_MASTER_KEY" in caught.value.message
        with pytest.raises(ServerError):
            await admin.secrets.set(unique("K"), "would be lost")  # nothing written under it
    wrong.stop()
    again = make_server(data_dir=data_dir, master_key=right)
    async with AsyncClient(api_url=again.url) as client:
        assert await (await _admin(client)).get(key) == "kept"


async def test_a_ciphertext_moved_to_another_secret_does_not_open(
    make_server: Callable[..., RunningServer],
) -> None:
    running = make_server()
    one, two = unique("ONE_"), unique("TWO_")
    async with AsyncClient(api_url=running.url, max_retries=0) as client:
        admin = await _admin(client)
        await admin.secrets.set(one, "first")
        await admin.secrets.set(two, "second")
        path = platform_of(running).db.sqlite_path_of("default")
        with sqlite3.connect(path) as raw:  # an attacker with the database file
            raw.execute(
                "UPDATE roost_secret_versions SET ciphertext = (SELECT v.ciphertext FROM "
                "roost_secret_versions v JOIN roost_secrets s ON s.id = v.secret_id "
                "WHERE s.key = ?) WHERE secret_id = (SELECT id FROM roost_secrets WHERE key = ?)",
                (one, two),
            )
        with pytest.raises(ServerError) as caught:
            await admin.secrets.get_secret(two)
        assert caught.value.code == "secret_unreadable"
        assert await admin.get(one) == "first"


async def test_values_never_reach_the_logs(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    canary = unique("log-canary-")
    caplog.set_level(logging.DEBUG)
    async with AsyncClient(api_url=server.url) as client:
        admin = await _admin(client)
        key = unique("LOGGED_")
        await admin.secrets.set(key, canary)
        await admin.secrets.get_secret(key)
        await admin.secrets.get_secrets([key])
        with pytest.raises(Exception):  # noqa: B017, PT011 - any refusal, as long as it is quiet
            await admin.secrets.get_secret(key, tags=["absent"])
    assert canary not in caplog.text


async def test_racing_first_writes_make_one_data_key_and_one_secret(
    server: RunningServer,
) -> None:
    tenant, key = unique("race"), unique("RACED_")
    async with AsyncClient(api_url=server.url) as client:
        admin = await _admin(client)
        await admin.tenants.create(tenant, admin_username="root", admin_password="root-password")
        async with AsyncClient(api_url=server.url, tenant=tenant) as other:
            root = await other.auth.sign_in_with_password("root", "root-password")
            keys = [f"{key}{n}" for n in range(6)]
            await asyncio.gather(*(root.secrets.set(k, k.lower()) for k in keys))
            await asyncio.gather(*(root.secrets.set(key, f"v{n}") for n in range(6)))
            assert {k: s["value"] for k, s in (await root.secrets.get_secrets(keys)).items()} == {
                k: k.lower() for k in keys
            }
            assert [v["version"] for v in await root.secrets.versions(key)] == [6, 5, 4, 3, 2, 1]


def test_a_master_key_that_is_not_32_bytes_of_base64_is_refused(tmp_path: object) -> None:
    from pathlib import Path

    with pytest.raises(ConfigurationError) as caught:
        load_settings(data_dir=Path(str(tmp_path)), master_key="too-short").master_key_bytes()
    assert "ROOST_MASTER_KEY" in caught.value.message
    made = load_settings(data_dir=Path(str(tmp_path)))
    assert len(made.master_key_bytes()) == 32  # a key file, made once
    assert made.master_key_bytes() == made.master_key_bytes()
    key_file = Path(str(tmp_path)) / "master.key"
    assert key_file.stat().st_mode & 0o077 == 0
    key_file.chmod(0o644)
    with pytest.raises(ConfigurationError) as caught:
        made.master_key_bytes()
    assert "chmod 600" in caught.value.message
