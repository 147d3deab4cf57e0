"""Audit entries of sign-in events in the tenant's structured logs (category `auth`), where
admins read them with `logs.query`. Never a secret, token or code: names and ids only."""

from __future__ import annotations

import logging
from typing import Any

from roost.backends.sql.tables import logs
from roost.services.context import Context
from roost.wire.logs import LEVELS, Level

logger = logging.getLogger("roost.auth")


async def audit(
    ctx: Context, level: Level, message: str, data: dict[str, Any], *, username: str = ""
) -> None:
    """Write one `auth` entry, by `username` (else the caller's name, else the client's
    address); a failure to write it is logged, never the caller's failure."""
    principal = ctx.principal
    by = username or (principal.username if principal else "") or ctx.client_address
    entry = {"address": ctx.client_address, **data}
    try:
        async with ctx.platform.db.write(ctx.tenant) as conn:
            await conn.execute(
                logs.insert().values(
                    at=ctx.now(),
                    level_no=LEVELS[level],
                    category="auth",
                    message=message,
                    data=entry,
                    username=by[:150],
                )
            )
    except Exception:  # the audit trail must not turn a sign-in into a 500
        logger.exception("could not write the auth audit entry %r", message)
