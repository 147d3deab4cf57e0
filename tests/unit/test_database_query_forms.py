"""`database.query` has two forms on both clients (api.md, Database): `query(table)` is the
builder and sends nothing; any Dominus argument (`filters=`, `sort_by=`, `limit=`, `offset=`,
`reason=`, `actor=`) makes it the call itself, answering `{"rows", "total"}`. These tests pin
that overload, which the generated sync client gets from the `AsyncQueryAnswer` alias."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from roost.client._async.database import AsyncQuery
from roost.client._sync.database import Query
from tests.unit.fake_server import FakeServer, ok, run

pytestmark = pytest.mark.anyio

Connect = Callable[..., Any]
ANSWER = {"rows": [{"id": 1}], "total": 1, "page": 1, "page_size": 100}


async def test_the_table_alone_gives_the_builder_and_sends_nothing(
    connect: Connect, flavour: str
) -> None:
    server = FakeServer()
    server.answer("database.query", ok(ANSWER))
    builder = connect(server).database.query("orders")
    assert isinstance(builder, AsyncQuery if flavour == "async" else Query)
    assert not inspect.isawaitable(builder)
    assert server.requests == []
    assert await run(builder.filter("total", "gt", 5).get()) == ANSWER["rows"]


@pytest.mark.parametrize(
    "dominus",
    [
        {"filters": {"status": "active"}},
        {"sort_by": "total"},
        {"limit": 5},
        {"offset": 10},
        {"reason": "support ticket 12"},
        {"actor": "dr.smith"},
    ],
)
async def test_any_dominus_argument_gives_the_answer(
    connect: Connect, flavour: str, dominus: dict[str, Any]
) -> None:
    server = FakeServer()
    server.answer("database.query", ok(ANSWER))
    pending = connect(server).database.query("orders", **dominus)
    assert inspect.isawaitable(pending) == (flavour == "async")
    assert await run(pending) == ANSWER
    assert len(server.calls("database.query")) == 1


async def test_the_dominus_form_sends_its_arguments(connect: Connect) -> None:
    server = FakeServer()
    server.answer("database.query", ok(ANSWER))
    await run(
        connect(server).database.query(
            "orders",
            filters={"status": "active", "region": ["eu", "us"]},
            sort_by="total",
            sort_order="desc",
            limit=5,
            offset=10,
        )
    )
    sent = FakeServer.body(server.calls("database.query")[0])
    assert sent["table"] == "orders"
    assert sent["filters"] == [["status", "eq", "active"], ["region", "in", ["eu", "us"]]]
    assert sent["sort"] == [["total", "desc"]]
    assert (sent["limit"], sent["offset"]) == (5, 10)
