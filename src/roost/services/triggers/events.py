"""Events: what happened, made into messages on the deployment's triggers queue.

The triggers queue is `$triggers:<ROOST_FUNCTIONS_QUEUE>` in the queue store (SQL tables
embedded, Redis scaled out), a name no tenant can reach through `queue.*` (their queues are
`<tenant>:<name>`, and no tenant name starts with `$`). A message carries the tenant, the
trigger's id, the event (with its id) and how many attempts came before: the queue keeps it
across restarts and leases it to the one process delivering it, so an event is delivered at
least once (`delivery.py`). An event counts as accepted once it is in the tenant's outbox,
written in the same transaction as the change that made it (`outbox.py`); it is queued after
that commits, before a write to a table answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta
from sqlalchemy import Connection, Table, select

from roost.services.context import Platform
from roost.services.database.filters import table_conditions
from roost.services.security import new_id
from roost.services.tabledefs import TableDef
from roost.services.triggers import model
from roost.services.triggers.model import TriggerRow
from roost.settings import Settings
from roost.wire.common import TENANT_NAME
from roost.wire.triggers import DatabaseSource, StorageSource

_BODY = msgspec.json.Decoder()


class QueuedEvent(msgspec.Struct, forbid_unknown_fields=True):
    """A message of the triggers queue."""

    tenant: Annotated[str, Meta(pattern=TENANT_NAME)]
    trigger_id: str
    id: str
    event: dict[str, Any]
    attempt: int = 0  # attempts made before this message


def queue_name(settings: Settings) -> str:
    return f"$triggers:{settings.functions_queue}"


def wake_channel(queue: str) -> str:
    """The channel that wakes consumers waiting on `queue` (the queue service's form)."""
    return f"queue:{queue}"


def decode(body: str) -> QueuedEvent | None:
    try:
        return msgspec.convert(_BODY.decode(body), QueuedEvent)
    except msgspec.MsgspecError:
        return None


def make_event(
    trigger: TriggerRow, kind: str, data: Any, *, at: datetime, event_id: str | None = None
) -> dict[str, Any]:
    """The event a target receives: `{"id", "trigger", "source", "type", "time", "data"}`,
    made of JSON values only (records' datetimes and decimals become text)."""
    event = {
        "id": event_id or f"evt_{new_id()}",
        "trigger": trigger.name,
        "source": trigger.source_kind,
        "type": kind,
        "time": at.astimezone(UTC).isoformat(),
        "data": data,
    }
    plain: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(event))
    return plain


async def publish(
    platform: Platform,
    tenant: str,
    events: Sequence[tuple[TriggerRow, dict[str, Any]]],
    *,
    attempt: int = 0,
    delay: float = 0,
) -> None:
    """Put events on the triggers queue (each for its trigger) and wake the deliverers."""
    if not events:
        return
    name = queue_name(platform.settings)
    for trigger, event in events:
        message = QueuedEvent(tenant, trigger.id, event["id"], event, attempt)
        body = msgspec.json.encode(message).decode()
        await platform.queues.publish(name, body, priority=5, headers={}, delay=delay)
    if not delay:
        await platform.bus.publish(wake_channel(name), b"")


# -- database ------------------------------------------------------------------------------


async def table_triggers(platform: Platform, tenant: str, table: str) -> list[TriggerRow]:
    """The enabled triggers that follow `table` (from the cache: no read on most writes)."""
    return [
        t
        for t in await model.cached(platform, tenant)
        if t.enabled and isinstance(t.source, DatabaseSource) and t.source.table == table
    ]


def matching(
    conn: Connection,
    hooks: Sequence[TriggerRow],
    definition: TableDef,
    table: Table,
    rows: Sequence[dict[str, Any]],
    dialect: str,
) -> dict[str, set[Any]]:
    """For each trigger with filters, the primary keys of `rows` its filters match, read in
    the write's own transaction (so a filter means what it means in a query)."""
    key = definition.primary_key.name
    ids = [row[key] for row in rows if row.get(key) is not None]
    found: dict[str, set[Any]] = {}
    for hook in hooks:
        assert isinstance(hook.source, DatabaseSource)
        if not hook.source.filters or not ids:
            continue
        conditions = table_conditions(definition, table, hook.source.filters, dialect)
        query = select(table.c[key]).where(table.c[key].in_(ids), *conditions)
        found[hook.id] = set(conn.execute(query).scalars())
    return found


def database_events(
    hooks: Sequence[TriggerRow],
    definition: TableDef,
    change: str,
    old: Sequence[dict[str, Any]],
    new: Sequence[dict[str, Any]],
    matched: dict[str, set[Any]],
    at: datetime,
) -> list[tuple[TriggerRow, dict[str, Any]]]:
    """One event per changed row for each trigger that wants this change and whose filters
    match it (the new record for inserts and updates, the old one for deletes). An event's
    data is `{"table", "old", "new"}` (`old` is null for an insert, `new` for a delete)."""
    key = definition.primary_key.name
    before = {row.get(key): row for row in old}
    changed = new if change != "delete" else (old or new)
    events: list[tuple[TriggerRow, dict[str, Any]]] = []
    for hook in hooks:
        assert isinstance(hook.source, DatabaseSource)
        if change not in hook.source.events:
            continue
        wanted = matched.get(hook.id)
        for row in changed:
            pk = row.get(key)
            if wanted is not None and pk not in wanted:
                continue
            if change == "insert":
                data = {"table": definition.name, "old": None, "new": row}
            elif change == "update":
                data = {"table": definition.name, "old": before.get(pk), "new": row}
            else:
                data = {"table": definition.name, "old": before.get(pk, row), "new": None}
            events.append((hook, make_event(hook, change, data, at=at)))
    return events


# -- storage --------------------------------------------------------------------------------


async def storage_changed(
    platform: Platform, tenant: str, bucket: str, name: str, change: str, data: dict[str, Any]
) -> None:
    """Object `name` of `bucket` was created or deleted: an event for each trigger that
    follows the bucket, this kind of change and a prefix of the name."""
    hooks = [
        t
        for t in await model.cached(platform, tenant)
        if t.enabled
        and isinstance(t.source, StorageSource)
        and t.source.bucket == bucket
        and change in t.source.events
        and name.startswith(t.source.prefix)
    ]
    at = platform.clock.now()
    payload = {"bucket": bucket, "name": name, **data}
    from roost.services.triggers import outbox  # it queues through this module

    await outbox.accept(
        platform, tenant, [(t, make_event(t, change, payload, at=at)) for t in hooks]
    )
