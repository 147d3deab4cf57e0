"""Event streams on the SQL backend's control database: the embedded default.

An append holds the room (advisory lock on PostgreSQL, the single writer on SQLite), so offsets
are dense, and a reader never sees offset n+1 committed before offset n.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from roost.backends.sql import CONTROL, Database
from roost.backends.sql.locking import serialize_writers
from roost.backends.sql.tables import stream_events as ev
from roost.backends.sql.tables import stream_rooms as rooms
from roost.backends.stream import NewEvent, Page, Retention, StoredEvent


def _event(row: Any) -> StoredEvent:
    return StoredEvent(
        id=row.id,
        offset=row.offset,
        event_type=row.event_type,
        data=row.data,
        metadata=json.loads(row.metadata),
        timestamp=row.timestamp,
    )


class SqlStreamStore:
    kind = "sql"

    def __init__(self, db: Database) -> None:
        self._db = db

    async def append(
        self, room: str, events: list[NewEvent], default_retention: Retention
    ) -> list[StoredEvent]:
        def work(conn: Connection) -> list[StoredEvent]:
            serialize_writers(conn, "stream", room)
            state = conn.execute(select(rooms).where(rooms.c.room == room)).first()
            if state is None:
                conn.execute(rooms.insert().values(room=room, next_offset=0))
                first, max_events, max_age = 0, None, None
            else:
                first, max_events, max_age = state.next_offset, state.max_events, state.max_age
            now = time.time()
            stored = [
                StoredEvent(secrets.token_hex(12), first + i, e.event_type, e.data, e.metadata, now)
                for i, e in enumerate(events)
            ]
            conn.execute(
                ev.insert(),
                [
                    {
                        "room": room,
                        "offset": e.offset,
                        "id": e.id,
                        "event_type": e.event_type,
                        "data": e.data,
                        "metadata": json.dumps(e.metadata),
                        "timestamp": now,
                    }
                    for e in stored
                ],
            )
            last = first + len(events) - 1
            conn.execute(update(rooms).where(rooms.c.room == room).values(next_offset=last + 1))
            keep = max_events or default_retention.max_events
            if last >= keep:
                conn.execute(delete(ev).where(ev.c.room == room, ev.c.offset <= last - keep))
            age = max_age or default_retention.max_age
            if age is not None:
                conn.execute(delete(ev).where(ev.c.room == room, ev.c.timestamp < now - age))
            return stored

        return await self._db.run(CONTROL, work, write=True)

    async def read(
        self, room: str, from_offset: int, to_offset: int | None, limit: int, *, live: bool = False
    ) -> Page:
        def work(conn: Connection) -> Page:
            next_offset = conn.execute(
                select(rooms.c.next_offset).where(rooms.c.room == room)
            ).scalar()
            newest = (next_offset or 0) - 1
            oldest = conn.execute(select(func.min(ev.c.offset)).where(ev.c.room == room)).scalar()
            oldest = newest + 1 if oldest is None else oldest
            start = max(newest + 1 + from_offset, 0) if from_offset < 0 else from_offset
            query = select(ev).where(ev.c.room == room, ev.c.offset >= start)
            if to_offset is not None:
                query = query.where(ev.c.offset <= to_offset)
            rows = conn.execute(query.order_by(ev.c.offset).limit(limit))
            return Page([_event(row) for row in rows], oldest, newest)

        return await self._db.run(CONTROL, work)

    async def configure(self, room: str, retention: Retention) -> None:
        def work(conn: Connection) -> None:
            serialize_writers(conn, "stream", room)
            values = {"max_events": retention.max_events, "max_age": retention.whole_max_age}
            changed = conn.execute(update(rooms).where(rooms.c.room == room).values(**values))
            if changed.rowcount == 0:
                conn.execute(rooms.insert().values(room=room, next_offset=0, **values))

        await self._db.run(CONTROL, work, write=True)

    async def delete_prefix(self, prefix: str) -> None:
        def work(conn: Connection) -> None:
            conn.execute(delete(ev).where(ev.c.room.startswith(prefix, autoescape=True)))
            conn.execute(delete(rooms).where(rooms.c.room.startswith(prefix, autoescape=True)))

        await self._db.run(CONTROL, work, write=True)

    async def close(self) -> None:
        """Nothing of its own to close: the database belongs to the platform."""
