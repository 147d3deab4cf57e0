"""What SDK calls return (records themselves are plain dicts).

The results of kv, queue, stream, pubsub, policy, page access, token checks and health are the wire
Structs the server answers with, under the names users know: one definition per shape. `decode`
turns an answer into one of them; a field a newer server adds is ignored, so an older SDK keeps
working.

No result lies in an `if` (docs/architecture.md, "Truth values"): one that says yes or no is
that answer (`SetResult`, `NackResult`, `PageAccess`, `VerifyResult`, `HealthReport`,
`BatchItemResult`); one that reports raises TypeError on bool() (`GetResult`, `ScanResult`,
`PublishResult`, `QueueStats`, `StreamPublishResult`, `HistoryResult`, `PubSubPublishResult`);
a record (`QueueMessage`, `StreamEvent`, `TableChange`, dicts) is true, and None stands for
"none".
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from roost.errors import ResponseError
from roost.wire import auth, common, kv, pages, policy, pubsub, queue, stream

T = TypeVar("T")

SetResult = kv.SetAnswer
GetResult = kv.GetAnswer
ScanResult = kv.ScanAnswer
PublishResult = queue.PublishAnswer
QueueMessage = queue.QueueMessage
NackResult = queue.NackAnswer
QueueStats = queue.StatsAnswer
StreamEvent = stream.StreamEvent
StreamPublishResult = stream.StreamPublishAnswer
HistoryResult = stream.HistoryAnswer
PubSubPublishResult = pubsub.PubSubPublishAnswer
PageAccess = pages.PageAccess
VerifyResult = auth.VerifyResult
HealthReport = common.HealthReport
BackendHealth = common.BackendHealth
CheckResponse = policy.CheckResponse
CheckResult = policy.CheckResult
PlanResponse = policy.PlanResponse
PolicyPrincipal = policy.Principal
PolicyResource = policy.Resource
ResourceEntry = policy.ResourceEntry
Policy = policy.Policy
PolicyInfo = policy.PolicyInfo
PolicyList = policy.PolicyList
PolicyChange = policy.PolicyChange
PolicyGlobals = policy.PolicyGlobals
PutPoliciesResult = policy.PutPoliciesAnswer
PolicyTestReport = policy.PolicyTestReport


def decode(answer: Any, kind: type[T]) -> T:
    """The server's decoded `answer` as a `kind`; ResponseError naming the field that does not
    fit (fields the SDK does not know are ignored)."""
    try:
        return msgspec.convert(answer, kind)
    except msgspec.ValidationError as exc:
        raise ResponseError(
            f"the server's answer is not a {kind.__name__}: {exc}",
            details={"type": kind.__name__},
        ) from None


class BatchItemResult(msgspec.Struct, frozen=True):
    """One operation of a `client.batch` call: `status` is "success" or "error"."""

    status: str
    payload: Any = None
    error: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def __bool__(self) -> bool:
        return self.ok


class TableChange(msgspec.Struct, frozen=True):
    """A change of a table: `type` is "insert", "update" or "delete"; `record` is the row as
    stored (for a delete, only its primary key); `offset` orders the table's changes."""

    type: str
    table: str
    record: dict[str, Any]
    offset: int
    timestamp: float
