"""Synap on Roost: change `from synap import ...` to `from roost.compat.synap import ...` and
nothing else (`docs/coming-from-synap.md` lists what still differs).

    from roost.compat.synap import AsyncSynapClient

    async with AsyncSynapClient(url="http://127.0.0.1:8787", api_key=key) as client:
        await client.kv.set("user:1", {"name": "Alice"}, ttl=3600)

The API key is a Roost API key. Unset settings come from `SYNAP_URL`, `SYNAP_API_KEY`,
`SYNAP_TIMEOUT`, ... (`ClientConfig`'s fields), then from `ROOST_*`.
"""

from roost.client._core.results import (
    BatchItemResult,
    GetResult,
    HistoryResult,
    NackResult,
    PublishResult,
    PubSubPublishResult,
    QueueMessage,
    ScanResult,
    SetResult,
    StreamEvent,
)
from roost.client._core.results import StreamPublishResult as PublishEventResult
from roost.client._realtime import AsyncSubscription as Subscription
from roost.compat._async.synap import AsyncSynapClient
from roost.compat._core.synap import (
    ClientConfig,
    KeyNotFoundError,
    QueueNotFoundError,
    RoomNotFoundError,
    SynapError,
)
from roost.compat._sync.synap import SynapClient
from roost.errors import ConnectionError, RateLimitError

__all__ = [
    # clients
    "AsyncSynapClient",
    "SynapClient",
    "ClientConfig",
    # results
    "SetResult",
    "GetResult",
    "ScanResult",
    "PublishResult",
    "QueueMessage",
    "NackResult",
    "PublishEventResult",
    "StreamEvent",
    "HistoryResult",
    "PubSubPublishResult",
    "BatchItemResult",
    "Subscription",
    # errors
    "SynapError",
    "KeyNotFoundError",
    "QueueNotFoundError",
    "RoomNotFoundError",
    "RateLimitError",
    "ConnectionError",
]
