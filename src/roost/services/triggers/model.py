"""A tenant's triggers as the services read them: rows decoded into their wire types, and a
short-lived cache of them per tenant for the hot paths (every write to a table asks whether
a trigger follows it), dropped on every replica when a trigger changes."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.engine import RowMapping

from roost.backends.sql.tables import triggers
from roost.services.caching import TenantCache
from roost.services.context import TENANT_SETTINGS, Platform
from roost.wire.triggers import Source, Target

logger = logging.getLogger("roost.triggers")

_TRIGGERS = TenantCache["tuple[TriggerRow, ...]"]("triggers.all", ttl=5.0)


class TriggerRow(msgspec.Struct, frozen=True):
    id: str
    name: str
    description: str
    source: Source
    target: Target
    enabled: bool
    owner_id: str
    owner_name: str
    last_tick: float | None
    secret_sealed: bytes | None
    row: RowMapping

    @property
    def source_kind(self) -> str:
        return type(self.source).__struct_config__.tag  # type: ignore[return-value]


def decode_row(row: RowMapping) -> TriggerRow:
    source: Any = msgspec.convert(row["source"], Source)
    target: Any = msgspec.convert(row["target"], Target)
    sealed = row["secret_sealed"]
    return TriggerRow(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        source=source,
        target=target,
        enabled=bool(row["enabled"]),
        owner_id=row["owner_id"],
        owner_name=row["owner_name"],
        last_tick=row["last_tick"],
        secret_sealed=None if sealed is None else bytes(sealed),
        row=row,
    )


async def read_all(platform: Platform, tenant: str) -> tuple[TriggerRow, ...]:
    """Every trigger of the tenant, read now."""
    query = select(triggers).order_by(triggers.c.name)
    rows = await platform.db.run(tenant, lambda conn: conn.execute(query).mappings().all())
    return tuple(decode_row(row) for row in rows)


async def cached(platform: Platform, tenant: str) -> tuple[TriggerRow, ...]:
    """Every trigger of the tenant, at most a few seconds old (none older than the last
    change made through this replica, nor, once the bus brings the news, through another)."""
    return await _TRIGGERS.of(platform).get_or_load(tenant, lambda: read_all(platform, tenant))


async def changed(platform: Platform, tenant: str) -> None:
    """A trigger of `tenant` changed: drop what every replica cached of it."""
    platform.forget_cached(tenant)
    await platform.bus.publish(TENANT_SETTINGS, tenant.encode())
    await platform.bus.publish(CHANGED, tenant.encode())


CHANGED = "triggers:changed"
"""Bus channel: the triggers of the tenant named by the payload changed (the cron and
consumer loops look at them again)."""


def deliveries_channel(tenant: str) -> str:
    """Bus channel: deliveries of `tenant` changed; the payload is a JSON list of
    `[trigger_id, event_id]` (read by `triggers.watch_deliveries`)."""
    return f"triggers:deliveries:{tenant}"


async def deliveries_changed(
    platform: Platform, tenant: str, changed: Sequence[tuple[str, str]]
) -> None:
    """Announce that these `(trigger_id, event_id)` deliveries were made or updated. Only live
    views miss it when the bus fails: the delivery stands and is not attempted again for it."""
    if not changed:
        return
    try:
        await platform.bus.publish(deliveries_channel(tenant), msgspec.json.encode(changed))
    except Exception:
        logger.warning("could not announce %d trigger deliveries", len(changed), exc_info=True)
