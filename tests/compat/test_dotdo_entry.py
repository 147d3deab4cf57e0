"""`roost.compat.dotdo` as DotDo code imports it: the seed's `DotDo` is the async client."""

from __future__ import annotations

from roost.compat import dotdo
from roost.compat._async.dotdo import AsyncDotDo
from roost.compat._sync.dotdo import DotDo as GeneratedSyncDotDo


def test_the_seeds_dotdo_is_the_async_client() -> None:
    assert dotdo.DotDo is AsyncDotDo
    assert dotdo.SyncDotDo is GeneratedSyncDotDo
    assert set(dotdo.__all__) <= set(dir(dotdo))
