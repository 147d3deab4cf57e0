"""The signing secret of a URL target: made when the target is set, shown once, kept sealed
by the vault (bound to the tenant and the trigger's id, so a sealed value copied onto another
trigger does not open)."""

from __future__ import annotations

import base64
import os

from roost.errors import ServerError
from roost.services.caching import TenantCache
from roost.services.context import Platform
from roost.services.triggers.model import TriggerRow
from roost.services.vault import secret_place

_PLACE = "$triggers"
_OPENED = TenantCache[str]("triggers.secrets", ttl=300.0)


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


async def seal(platform: Platform, tenant: str, trigger_id: str, secret: str) -> bytes:
    key = await platform.vault.data_key(platform.db, tenant, create=True)
    assert key is not None
    return platform.vault.seal(key, secret_place(tenant, _PLACE, trigger_id, 1), secret)


async def open_secret(platform: Platform, tenant: str, trigger: TriggerRow) -> str:
    """The secret, opened once per sealed value in this process (each delivery needs it)."""
    if trigger.secret_sealed is None:
        raise ServerError(f"trigger {trigger.name!r} has no signing secret")
    cache = _OPENED.of(platform)
    cache_key = f"{tenant}/{trigger.id}/{trigger.secret_sealed.hex()}"
    found = cache.get(cache_key)
    if found is not None:
        return found
    key = await platform.vault.data_key(platform.db, tenant, create=False)
    if key is None:
        raise ServerError(f"trigger {trigger.name!r} has no signing secret")
    place = secret_place(tenant, _PLACE, trigger.id, 1)
    opened = platform.vault.open(key, place, trigger.secret_sealed)
    cache.put(cache_key, opened)
    return opened
