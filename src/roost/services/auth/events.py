"""Audit entries of the sign-in flows: each is a structured log entry of the tenant
(category `auth.audit`, read with `logs.query`) and a line of the server's `roost.auth` log.
They name the user, the event and the client address, never a code, a token or a secret."""

from __future__ import annotations

import logging
from typing import Any, Literal

from roost.backends.sql.tables import logs
from roost.services.context import Context
from roost.wire.logs import LEVELS

CATEGORY = "auth.audit"
logger = logging.getLogger("roost.auth")


async def record(
    ctx: Context,
    event: str,
    username: str,
    *,
    level: Literal["info", "warn"] = "info",
    **data: Any,
) -> None:
    """Write one audit entry for `event` about the user `username`."""
    details = {"event": event, "address": ctx.client_address[:64], **data}
    async with ctx.platform.db.write(ctx.tenant) as conn:
        await conn.execute(
            logs.insert().values(
                at=ctx.now(),
                level_no=LEVELS[level],
                category=CATEGORY,
                message=event,
                data=details,
                username=username[:150],
            )
        )
    logger.log(
        logging.WARNING if level == "warn" else logging.INFO,
        "%s: user %s from %s",
        event,
        username,
        details["address"],
    )
