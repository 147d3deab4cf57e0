"""DotDo on Roost: change `from platform_do import ...` to `from roost.compat.dotdo import ...`
and nothing else (`docs/coming-from-dotdo.md` lists what still differs).

    from roost.compat.dotdo import DotDo

    async with DotDo(api_key=key, endpoint="ws://127.0.0.1:8787") as client:
        value = await client.call("kv.get", {"key": "greeting"})

`DotDo` is async, as DotDo's is; `SyncDotDo` is the same client for sync code. The API key
is a Roost API key. Unset settings come from `DOTDO_API_KEY`, `DOTDO_ENDPOINT`,
`DOTDO_POOL_SIZE`, ... (the constructor's arguments), then from `ROOST_*`.
"""

from roost.client._async.collection import AsyncCollection as Collection
from roost.client._async.collection import AsyncCollectionQuery as QueryBuilder
from roost.compat._async.dotdo import AsyncDotDo
from roost.compat._core.dotdo import AuthError, DotDoError, RpcError
from roost.compat._sync.dotdo import DotDo as SyncDotDo
from roost.errors import ConnectionError, RateLimitError, TimeoutError

DotDo = AsyncDotDo
"""The seed's client, which is async."""

__all__ = [
    # clients
    "DotDo",
    "AsyncDotDo",
    "SyncDotDo",
    "Collection",
    "QueryBuilder",
    # errors
    "DotDoError",
    "AuthError",
    "ConnectionError",
    "TimeoutError",
    "RateLimitError",
    "RpcError",
]
