"""The sweep of expired Idempotency-Key records of record writes (server/idempotency.py), on
PostgreSQL: a record claimed again while a sweep runs is not deleted under it (the
subquery's expiry is not checked again on a row another transaction changed)."""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from roost.backends.sql.tables import idempotency_answers
from roost.server.idempotency import _SWEEP_EXPIRED, _claim
from tests.conftest import POSTGRES_URL, require_postgres

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_record_claimed_again_during_a_sweep_is_kept() -> None:
    require_postgres()
    schema = f"sweep{secrets.token_hex(4)}"
    engine = create_async_engine(POSTGRES_URL.replace("postgresql://", "postgresql+asyncpg://"))
    options = {"schema_translate_map": {None: schema}}
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            await conn.run_sync(
                lambda sync: idempotency_answers.create(sync.execution_options(**options))
            )
            expired = {"slot": "s", "request": "old", "sealed": b"", "expires_at": 1.0}
            scoped = await conn.execution_options(**options)
            await scoped.execute(idempotency_answers.insert(), expired)
        now = time.time()
        async with engine.connect() as claimer, engine.connect() as sweeper:
            claimer = await claimer.execution_options(**options)
            sweeper = await sweeper.execution_options(**options)
            await claimer.begin()
            claimed = {**expired, "request": "new", "expires_at": now + 3600, "now": now}
            found = await claimer.execute(_claim("postgresql"), claimed)
            assert found.rowcount == 1  # the expired record is taken, not yet committed
            await sweeper.begin()
            sweep = asyncio.create_task(sweeper.execute(_SWEEP_EXPIRED, {"now": now}))
            await asyncio.sleep(0.3)  # the sweep meets the claimed row (and would wait on it)
            await claimer.commit()
            await sweep
            await sweeper.commit()
        async with engine.connect() as conn:
            conn = await conn.execution_options(**options)
            rows = (
                await conn.execute(
                    text(f'SELECT request FROM "{schema}".roost_idempotency_answers')
                )
            ).all()
        assert [tuple(r) for r in rows] == [("new",)], "the sweep deleted a live record"
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()
