"""The SDK's WebSockets: the realtime connection (subscriptions) and the RPC pool.

`connection.py` is one socket (calls, streams, pushed events); `engine.py` keeps one of them
open for subscriptions (`AsyncRealtime`); `pool.py` holds several for `client.rpc`
(`AsyncPool`); `portal.py` runs both for the sync client (`Realtime`, `Pool`). Not generated
by unasync: both clients share this code, on asyncio.
"""

from roost.client._realtime.connection import Route
from roost.client._realtime.engine import (
    AsyncRealtime,
    AsyncSubscription,
    Event,
    HeaderSource,
    websocket_url,
)
from roost.client._realtime.pool import AsyncPool
from roost.client._realtime.portal import Pool, Realtime, Subscription

__all__ = [
    "AsyncPool",
    "AsyncRealtime",
    "AsyncSubscription",
    "Event",
    "HeaderSource",
    "Pool",
    "Realtime",
    "Route",
    "Subscription",
    "websocket_url",
]
