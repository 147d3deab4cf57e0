"""Work queues on the SQL backend's control database: the embedded default.

Every move is one transaction. SQLite has a single writer; on PostgreSQL a claim picks its
message with `FOR UPDATE SKIP LOCKED`, so racing consumers never take the same one.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import msgspec
from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)

from roost.backends.queue import DEFAULT_MAX_DELIVERIES, Delivery, NackAction, QueueCounts
from roost.backends.sql import CONTROL, Database
from roost.backends.sql.fast import execute
from roost.backends.sql.tables import queue_messages as qm
from roost.backends.sql.tables import queues

_READY, _INFLIGHT, _DEAD = "ready", "inflight", "dead"


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row.id,
        body=row.body,
        priority=row.priority,
        headers=json.loads(row.headers),
        retry_count=max(row.deliveries - 1, 0),
        published_at=row.published_at,
    )


# The hot statements are built once: on SQLite, building one costs more than running it.
_Q: Any = bindparam("q_")
_NOW: Any = bindparam("now_")
_ID: Any = bindparam("id_")
_OVERDUE = and_(qm.c.queue == _Q, qm.c.state == _INFLIGHT, qm.c.due_at <= _NOW)
_TO_DEAD = (
    update(qm)
    .where(_OVERDUE, qm.c.deliveries >= qm.c.max_deliveries)
    .values(state=_DEAD, due_at=_NOW)
)
_TO_READY = update(qm).where(_OVERDUE).values(state=_READY, due_at=_NOW)
_ANYTHING_DUE = (
    select(qm.c.seq)
    .where(
        qm.c.queue == _Q,
        or_(qm.c.state == _READY, qm.c.state == _INFLIGHT),  # an IN would vary its SQL
        qm.c.due_at <= _NOW,
    )
    .limit(1)
)
_NEXT = (
    select(qm)
    .where(qm.c.queue == _Q, qm.c.state == _READY, qm.c.due_at <= _NOW)
    .order_by(qm.c.priority.desc(), qm.c.seq)
    .limit(1)
)
_NEXT_LOCKED = _NEXT.with_for_update(skip_locked=True)
_TAKE = (
    update(qm)
    .where(qm.c.seq == bindparam("seq_"))
    .values(state=_INFLIGHT, due_at=bindparam("deadline_"), deliveries=bindparam("deliveries_"))
)
_IN_FLIGHT = and_(qm.c.queue == _Q, qm.c.id == _ID, qm.c.state == _INFLIGHT)
_ACK = delete(qm).where(_IN_FLIGHT)
_MAX_DELIVERIES = select(queues.c.max_deliveries).where(queues.c.name == _Q)
_INSERT = qm.insert()
_AHEAD = select(func.count()).where(
    qm.c.queue == _Q, qm.c.state == _READY, qm.c.priority >= bindparam("p_"), qm.c.id != _ID
)


def _settle_overdue(conn: Connection, queue: str, now: float) -> None:
    """In-flight messages past their deadline: back to ready, or dead when out of deliveries."""
    execute(conn, _TO_DEAD, {"q_": queue, "now_": now})
    execute(conn, _TO_READY, {"q_": queue, "now_": now})


def _dead(queue: str, message_ids: list[str] | None) -> ColumnElement[bool]:
    """The dead letters of `queue`: those of `message_ids`, or with None every one."""
    dead = and_(qm.c.queue == queue, qm.c.state == _DEAD)
    return dead if message_ids is None else and_(dead, qm.c.id.in_(message_ids))


class SqlQueueStore:
    kind = "sql"

    def __init__(self, db: Database) -> None:
        self._db = db

    async def publish(
        self, queue: str, body: str, *, priority: int, headers: dict[str, str], delay: float
    ) -> tuple[str, int]:
        message_id = secrets.token_hex(12)

        def work(conn: Connection) -> int:
            now = time.time()
            limit = execute(conn, _MAX_DELIVERIES, {"q_": queue}).scalar()
            execute(
                conn,
                _INSERT,
                {
                    "id": message_id,
                    "queue": queue,
                    "state": _READY,
                    "priority": priority,
                    "due_at": now + delay,
                    "deliveries": 0,
                    "max_deliveries": limit or DEFAULT_MAX_DELIVERIES,
                    "body": body,
                    "headers": json.dumps(headers),
                    "published_at": now,
                },
            )
            ahead = {"q_": queue, "p_": priority, "id_": message_id}
            return int(execute(conn, _AHEAD, ahead).scalar_one())

        return message_id, await self._db.run(CONTROL, work, write=True)

    async def claim(self, queue: str, ack_deadline: float) -> Delivery | None:
        # Idle consumers poll: a read first spares the writer lock when there is nothing to do.
        due = {"q_": queue, "now_": time.time()}
        if await self._db.first_row(CONTROL, _ANYTHING_DUE, due) is None:
            return None

        def work(conn: Connection) -> Delivery | None:
            now = time.time()
            _settle_overdue(conn, queue, now)
            pick = _NEXT_LOCKED if conn.dialect.name == "postgresql" else _NEXT
            row = execute(conn, pick, {"q_": queue, "now_": now}).first()
            if row is None:
                return None
            taken = {
                "seq_": row.seq,
                "deadline_": now + ack_deadline,
                "deliveries_": row.deliveries + 1,
            }
            execute(conn, _TAKE, taken)
            return msgspec.structs.replace(_delivery(row), retry_count=row.deliveries)

        return await self._db.run(CONTROL, work, write=True)

    async def ack(self, queue: str, message_id: str) -> bool:
        def work(conn: Connection) -> bool:
            return bool(execute(conn, _ACK, {"q_": queue, "id_": message_id}).rowcount > 0)

        return await self._db.run(CONTROL, work, write=True)

    async def nack(self, queue: str, message_id: str, *, requeue: bool) -> NackAction | None:
        which = {"q_": queue, "id_": message_id}

        def work(conn: Connection) -> NackAction | None:
            row = conn.execute(
                select(qm.c.deliveries, qm.c.max_deliveries).where(_IN_FLIGHT), which
            ).first()
            if row is None:
                return None
            action: NackAction = (
                "requeued" if requeue and row.deliveries < row.max_deliveries else "dead_lettered"
            )
            state = _READY if action == "requeued" else _DEAD
            conn.execute(
                update(qm).where(_IN_FLIGHT).values(state=state, due_at=time.time()), which
            )
            return action

        return await self._db.run(CONTROL, work, write=True)

    async def extend(self, queue: str, message_id: str, seconds: float) -> bool:
        def work(conn: Connection) -> bool:
            moved = conn.execute(
                update(qm).where(_IN_FLIGHT).values(due_at=time.time() + seconds),
                {"q_": queue, "id_": message_id},
            )
            return moved.rowcount > 0

        return await self._db.run(CONTROL, work, write=True)

    async def counts(self, queue: str) -> QueueCounts:
        def work(conn: Connection) -> QueueCounts:
            now = time.time()
            delayed = and_(qm.c.state == _READY, qm.c.due_at > now)
            rows = conn.execute(
                select(qm.c.state, delayed.label("delayed"), func.count())
                .where(qm.c.queue == queue)
                .group_by(qm.c.state, delayed)
            ).all()
            tally = {(state, bool(later)): n for state, later, n in rows}
            return QueueCounts(
                ready=tally.get((_READY, False), 0),
                delayed=tally.get((_READY, True), 0),
                in_flight=sum(n for (state, _), n in tally.items() if state == _INFLIGHT),
                dead=sum(n for (state, _), n in tally.items() if state == _DEAD),
            )

        return await self._db.run(CONTROL, work)

    async def purge(self, queue: str) -> int:
        def work(conn: Connection) -> int:
            gone = conn.execute(delete(qm).where(qm.c.queue == queue, qm.c.state == _READY))
            return int(gone.rowcount)

        return await self._db.run(CONTROL, work, write=True)

    async def dead_letters(self, queue: str, limit: int) -> list[Delivery]:
        def work(conn: Connection) -> list[Delivery]:
            rows = conn.execute(
                select(qm)
                .where(qm.c.queue == queue, qm.c.state == _DEAD)
                .order_by(qm.c.seq)
                .limit(limit)
            )
            return [_delivery(row) for row in rows]

        return await self._db.run(CONTROL, work)

    async def replay(self, queue: str, message_ids: list[str] | None, limit: int) -> int:
        def work(conn: Connection) -> int:
            oldest = (
                select(qm.c.seq).where(_dead(queue, message_ids)).order_by(qm.c.seq).limit(limit)
            )
            # `state` again in the update itself: on PostgreSQL a replay that raced this one
            # and committed first has made the row ready, and the recheck then skips it
            moved = conn.execute(
                update(qm)
                .where(qm.c.seq.in_(oldest), qm.c.state == _DEAD)
                .values(state=_READY, due_at=time.time(), deliveries=0)
            )
            return int(moved.rowcount)

        return await self._db.run(CONTROL, work, write=True)

    async def delete_dead_letters(self, queue: str, message_ids: list[str] | None) -> int:
        def work(conn: Connection) -> int:
            return int(conn.execute(delete(qm).where(_dead(queue, message_ids))).rowcount)

        return await self._db.run(CONTROL, work, write=True)

    async def configure(self, queue: str, max_deliveries: int) -> None:
        def work(conn: Connection) -> None:
            conn.execute(delete(queues).where(queues.c.name == queue))
            conn.execute(queues.insert().values(name=queue, max_deliveries=max_deliveries))

        await self._db.run(CONTROL, work, write=True)

    async def delete_prefix(self, prefix: str) -> None:
        def work(conn: Connection) -> None:
            conn.execute(delete(qm).where(qm.c.queue.startswith(prefix, autoescape=True)))
            conn.execute(delete(queues).where(queues.c.name.startswith(prefix, autoescape=True)))

        await self._db.run(CONTROL, work, write=True)

    async def close(self) -> None:
        """Nothing of its own to close: the database belongs to the platform."""
