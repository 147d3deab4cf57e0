"""Site settings, per tenant: one JSON object (site name, theme, feature flags, ...) every
signed-in caller may read and admins change. Secrets belong in `secrets`, not here."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from roost.backends.sql.tables import site_settings, utcnow
from roost.services.context import Context
from roost.services.payloads import merged_object
from roost.services.registry import operation
from roost.wire.auth import SiteSettingsUpdate
from roost.wire.common import Empty

_LIMIT = 256 * 1024
_ROW = 1


@operation("settings.get", read_only=True)
async def get_settings(ctx: Context, params: Empty) -> dict[str, Any]:
    """The tenant's site settings (an empty object until an admin sets some)."""
    ctx.require_principal()
    async with ctx.platform.db.read(ctx.tenant) as conn:
        data = await conn.scalar(select(site_settings.c.data).where(site_settings.c.id == _ROW))
    return dict(data or {})


@operation("settings.update", scope="settings:write")
async def update_settings(ctx: Context, params: SiteSettingsUpdate) -> dict[str, Any]:
    """Merge keys into the site settings (a null value removes its key), or with `replace`
    set them as given. At most 256 KiB of JSON."""
    async with ctx.platform.db.write(ctx.tenant) as conn:
        current = await conn.scalar(
            select(site_settings.c.data).where(site_settings.c.id == _ROW).with_for_update()
        )
        merged = merged_object(
            current, params.settings, replace=params.replace, field="settings", limit=_LIMIT
        )
        if current is None:
            await conn.execute(
                site_settings.insert().values(id=_ROW, data=merged, updated_at=utcnow())
            )
        else:
            await conn.execute(
                site_settings.update()
                .where(site_settings.c.id == _ROW)
                .values(data=merged, updated_at=utcnow())
            )
    return merged
