"""What the per-call shortcuts of the server keep exact: in-flight counts that stay in their
dicts at 0, a metering flush that waits for the one under way, the raw-byte screen's bracket
count and length shortcuts, and decoders looked up by a type's id."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import func, select

from roost.backends.sql.migrations import migrate
from roost.backends.sql.tables import usage
from roost.errors import RateLimitError
from roost.server.limits import _PRUNE_AT, _Held
from roost.services.metering import Meter
from roost.wire.codec import JSON
from roost.wire.limits import MAX_DEPTH, passes_screen
from tests.backends.databases import sql_database


def test_counts_at_zero_are_dropped_once_many_principals_came_and_went() -> None:
    held = _Held("too_many_in_flight", "calls in flight", 2, 0, "max_in_flight")
    for n in range(_PRUNE_AT + 10):  # anonymous callers, each from an address of its own
        held.take(f"t/address:{n}", "t", 1)
        held.give_back(f"t/address:{n}", "t", 1)
    assert len(held.principals) <= _PRUNE_AT  # not one entry per caller ever seen
    held.take("t/user:a", "t", 2)
    with pytest.raises(RateLimitError):  # a count kept at 0, then taken again, still counts
        held.take("t/user:a", "t", 1)
    held.give_back("t/user:a", "t", 2)
    held.take("t/user:a", "t", 2)
    assert held.held() == 2


@pytest.mark.anyio
async def test_a_flush_returns_once_the_flush_under_way_is_written(tmp_path: Path) -> None:
    # usage.get flushes, then reads: counts a timed flush has taken must be written by then
    async with sql_database("sqlite", tmp_path) as db:
        await migrate(db, "acme")
        meter = Meter()
        meter.count("acme", None, 10, 20, calls=3)
        timed = asyncio.create_task(meter.flush(db))
        await asyncio.sleep(0)  # the timed flush starts: it takes the counts, then writes
        await meter.flush(db, "acme")
        assert timed.done()  # the flush before it was written before this one returned
        async with db.read("acme") as conn:
            requests = (await conn.execute(select(func.sum(usage.c.requests)))).scalar()
        await timed
    assert requests == 3


def test_the_screen_counts_brackets_before_it_measures_depth() -> None:
    wide = json.dumps({"rows": [[n] for n in range(MAX_DEPTH * 2)]}).encode()
    assert passes_screen(wide, "json")  # many brackets, two levels deep
    deep = b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)
    assert not passes_screen(deep, "json")
    assert not passes_screen(b'{"a": "x\\u0000"}', "json")  # an escape: the walk decides
    assert not passes_screen(b'{"at": "9999-12-31T23:00:00-05:00"}', "json")
    assert not passes_screen(b'{"n": 12345678901234567890}', "json")
    assert passes_screen(b'{"id": 1, "method": "kv.get", "params": {"key": "k"}}', "json")


def test_the_screens_length_shortcuts_stop_at_the_shortest_body_that_could_break_a_rule() -> None:
    # a body of 19 bytes may be a number past 2**63 - 1 (the digits scan is skipped below 19)
    assert not passes_screen(b"9223372036854775808", "json")
    assert passes_screen(b"922337203685477580", "json")
    # bodies no longer than MAX_DEPTH bytes skip the bracket count (none can nest deeper)
    assert not passes_screen(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "json")
    assert passes_screen(b"{}", "json")
    assert not passes_screen(b'"\\u0000"', "json")  # short, but an escape: the walk decides


def test_decoders_found_by_id_decode_as_their_type() -> None:
    class Point(msgspec.Struct):
        x: int

    for _ in range(3):  # a type built anew each time finds its equal's decoder
        assert JSON.decode(b"[1, 2]", list[int]) == [1, 2]
    assert JSON.decode(b'{"x": 1}', Point) == Point(x=1)
    either = Point | None
    assert JSON.decode(b'{"x": 1}', either) == Point(x=1)  # type: ignore[arg-type]  # a union
