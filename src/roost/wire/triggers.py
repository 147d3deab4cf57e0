"""Types of the triggers operations: a source of events and the target that receives them.

A source is one of `cron`, `database`, `storage`, `queue`, `stream` and `pubsub`, told apart
by its `kind`; a target is a function (`{"kind": "function", "name"}`) or an HTTP URL
(`{"kind": "url", "url"}`), which gets each event POSTed as JSON and signed per Standard
Webhooks with the trigger's secret (shown once, when the trigger is made).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta, Struct, field

from roost.wire.database import Filter
from roost.wire.functions import FunctionName
from roost.wire.pubsub import Pattern
from roost.wire.queue import QueueName
from roost.wire.storage import BucketName
from roost.wire.stream import RoomName

TRIGGER_NAME = r"^[a-z][a-z0-9_-]{0,62}$"
TriggerName = Annotated[
    str,
    Meta(
        pattern=TRIGGER_NAME,
        description="lower-case letters, digits, _ and -, starting with a letter, at most 63",
    ),
]
TableName = Annotated[str, Meta(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]
DatabaseChange = Literal["insert", "update", "delete"]
StorageChange = Literal["created", "deleted"]
DeliveryStatus = Literal["pending", "delivered", "failed"]


class CronSource(Struct, tag="cron", tag_field="kind", forbid_unknown_fields=True):
    """Fires at each tick of `schedule`: five fields (`*/5 * * * *`) or `@hourly`,
    `@daily`, `@weekly`, `@monthly`, `@yearly`, read in `timezone` (an IANA name)."""

    schedule: Annotated[str, Meta(min_length=1, max_length=200)]
    timezone: Annotated[str, Meta(min_length=1, max_length=64)] = "UTC"


class DatabaseSource(Struct, tag="database", tag_field="kind", forbid_unknown_fields=True):
    """Fires for each row of `table` inserted, updated or deleted through the API (of the
    kinds in `events`) that matches `filters` (the query builder's `[column, op, value]`:
    the new record for inserts and updates, the old one for deletes)."""

    table: TableName
    events: Annotated[list[DatabaseChange], Meta(min_length=1, max_length=3)] = field(
        default_factory=lambda: ["insert", "update", "delete"]
    )
    filters: Annotated[list[Filter], Meta(max_length=20)] = []


class StorageSource(Struct, tag="storage", tag_field="kind", forbid_unknown_fields=True):
    """Fires for each object created (uploaded, replaced) or deleted in `bucket` whose name
    starts with `prefix`."""

    bucket: BucketName
    events: Annotated[list[StorageChange], Meta(min_length=1, max_length=2)] = field(
        default_factory=lambda: ["created", "deleted"]
    )
    prefix: Annotated[str, Meta(max_length=1024)] = ""


class QueueSource(Struct, tag="queue", tag_field="kind", forbid_unknown_fields=True):
    """Consumes `queue`: each message goes to the target (a function), acked when it
    succeeds, given back when it fails, dead-lettered after the queue's `max_deliveries`."""

    queue: QueueName


class StreamSource(Struct, tag="stream", tag_field="kind", forbid_unknown_fields=True):
    """Fires for each event appended to stream room `room` from now on."""

    room: RoomName


class PubsubSource(Struct, tag="pubsub", tag_field="kind", forbid_unknown_fields=True):
    """Fires for each message published on a topic matching `pattern` (`*` one word, `#`
    any number)."""

    pattern: Pattern


Source = CronSource | DatabaseSource | StorageSource | QueueSource | StreamSource | PubsubSource
SourceKind = Literal["cron", "database", "storage", "queue", "stream", "pubsub"]


class FunctionTarget(Struct, tag="function", tag_field="kind", forbid_unknown_fields=True):
    """Runs function `name` with the event as its params, as the trigger's owner."""

    name: FunctionName


class UrlTarget(Struct, tag="url", tag_field="kind", forbid_unknown_fields=True):
    """POSTs the event as JSON to `url`, signed (headers `webhook-id`, `webhook-timestamp`,
    `webhook-signature`); retried with backoff until it answers 2xx."""

    url: Annotated[str, Meta(min_length=1, max_length=2048)]


Target = FunctionTarget | UrlTarget


class CreateTriggerRequest(Struct, forbid_unknown_fields=True):
    name: TriggerName
    source: Source
    target: Target
    description: Annotated[str, Meta(max_length=1000)] = ""
    enabled: bool = True


class UpdateTriggerRequest(Struct, forbid_unknown_fields=True):
    """What is given changes; what is left out stays."""

    name: TriggerName
    source: Source | None = None
    target: Target | None = None
    description: Annotated[str, Meta(max_length=1000)] | None = None
    enabled: bool | None = None


class TriggerRef(Struct, forbid_unknown_fields=True):
    name: TriggerName


class ListTriggersRequest(Struct, forbid_unknown_fields=True):
    source_kind: SourceKind | None = None


class Trigger(Struct):
    """A trigger. `secret` (the URL target's signing secret, `whsec_...`) is only in the
    answer of `triggers.create`."""

    name: str
    description: str
    source: Source
    target: Target
    enabled: bool
    owner: str
    created_at: datetime
    updated_at: datetime
    secret: str | None = None


class DeliveriesRequest(Struct, forbid_unknown_fields=True):
    name: TriggerName
    status: DeliveryStatus | None = None
    limit: Annotated[int, Meta(ge=1, le=1000)] = 50
    offset: Annotated[int, Meta(ge=0, le=2**31)] = 0


class Delivery(Struct):
    """One event a trigger took (`id` is the event's, as receivers see it): `pending` while
    attempts remain, then `delivered` or `failed`."""

    id: str
    status: DeliveryStatus
    attempts: int
    status_code: int | None
    last_error: str | None
    duration_ms: float | None
    created_at: datetime
    updated_at: datetime


class DeliveryList(Struct):
    results: list[Delivery]
    count: int
