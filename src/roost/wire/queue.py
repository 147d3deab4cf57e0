"""Types of the queue operations (Synap queue)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

from roost.wire.common import NoTruthValue

QueueName = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")]
MessageId = Annotated[str, Meta(min_length=1, max_length=40)]
Deadline = Annotated[float, Meta(ge=0.1, le=12 * 3600)]
Headers = dict[
    Annotated[str, Meta(min_length=1, max_length=200)], Annotated[str, Meta(max_length=4096)]
]


class PublishRequest(Struct, forbid_unknown_fields=True):
    queue: QueueName
    message: Any
    priority: Annotated[int, Meta(ge=0, le=9)] = 5
    headers: Annotated[Headers, Meta(max_length=64)] | None = None
    delay: Annotated[float, Meta(ge=0, le=7 * 86400)] = 0


class PublishAnswer(Struct, NoTruthValue):
    """`queue.publish` (the SDK's `PublishResult`): the message's id and its place."""

    message_id: str
    position: int  # ready messages ahead of this one


class ConsumeRequest(Struct, forbid_unknown_fields=True):
    queue: QueueName
    timeout: Annotated[float, Meta(ge=0, le=60)] = 0
    ack_deadline: Deadline = 30


class QueueMessage(Struct):
    """A consumed message: ack it (or nack it) by `message_id` before its deadline."""

    message_id: str
    message: Any
    priority: int
    retry_count: int
    headers: dict[str, str]
    published_at: float


class ConsumeAnswer(Struct):
    message: QueueMessage | None


class MessageRef(Struct, forbid_unknown_fields=True):
    queue: QueueName
    message_id: MessageId


class NackRequest(Struct, forbid_unknown_fields=True):
    queue: QueueName
    message_id: MessageId
    requeue: bool = True


class NackAnswer(Struct):
    """`queue.nack` (the SDK's `NackResult`): whether the message was requeued or
    dead-lettered; its truth value is `success`."""

    success: bool
    action: Literal["requeued", "dead_lettered"]

    def __bool__(self) -> bool:
        return self.success


class Succeeded(Struct):
    """The answer of a queue or stream change whose only result is that it happened. Its field
    is `success`, as these operations have always answered (elsewhere: `common.Done`)."""

    success: bool = True


class ExtendRequest(Struct, forbid_unknown_fields=True):
    queue: QueueName
    message_id: MessageId
    seconds: Deadline


class QueueRef(Struct, forbid_unknown_fields=True):
    queue: QueueName


class ConfigureRequest(Struct, forbid_unknown_fields=True):
    queue: QueueName
    max_deliveries: Annotated[int, Meta(ge=1, le=1000)]


class DeadLettersRequest(Struct, forbid_unknown_fields=True):
    queue: QueueName
    limit: Annotated[int, Meta(ge=1, le=1000)] = 100


DeadLetterIds = Annotated[list[MessageId], Meta(max_length=1000)]


class ReplayRequest(Struct, forbid_unknown_fields=True):
    """`queue.replay`: the dead letters named (or with none named, the oldest), at most
    `limit`, back to the queue."""

    queue: QueueName
    message_ids: DeadLetterIds | None = None
    limit: Annotated[int, Meta(ge=1, le=1000)] = 1000


class ReplayAnswer(Struct):
    replayed: int


class DeleteDeadLettersRequest(Struct, forbid_unknown_fields=True):
    """`queue.delete_dead_letters`: the dead letters named, or with none named every one."""

    queue: QueueName
    message_ids: DeadLetterIds | None = None


class DeleteDeadLettersAnswer(Struct):
    deleted: int


class StatsAnswer(Struct, NoTruthValue):
    """`queue.stats` (the SDK's `QueueStats`): ready, delayed, in-flight and dead counts."""

    queue: str
    ready: int
    delayed: int
    in_flight: int
    dead: int


class PurgeAnswer(Struct):
    purged: int


class DeadLettersAnswer(Struct):
    messages: list[QueueMessage]
