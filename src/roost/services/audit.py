"""Secure tables: no access without a reason and an actor, and every access written down.

The audit log (`roost_audit`) is append-only: the database itself refuses to update or delete
its rows (a trigger). Admins with `audit:read` query it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import Connection, select

from roost.backends.sql.tables import audit_log
from roost.errors import SecureTableError
from roost.services.context import Context
from roost.services.registry import operation
from roost.services.tabledefs import TableDef
from roost.wire.database import AuditEntry, AuditQuery

_MAX_IDS = 1000  # record ids kept per entry; a larger access notes how many more


class Access(msgspec.Struct, frozen=True):
    reason: str
    actor: str


def require_access(definition: TableDef, reason: str | None, actor: str | None) -> Access | None:
    """For a secure table, the reason and actor of this access (SecureTableError without them)."""
    if not definition.secure:
        return None
    if not reason or not actor:
        raise SecureTableError(
            f"table {definition.name!r} is secure: pass reason= and actor= (who the access is "
            "for); both go to the audit log",
            details={
                "table": definition.name,
                "missing": [n for n, v in (("reason", reason), ("actor", actor)) if not v],
            },
        )
    return Access(reason, actor)


def record(
    conn: Connection,
    ctx: Context,
    access: Access,
    operation_name: str,
    table: str,
    record_ids: Sequence[Any],
) -> None:
    """Append one entry, in the caller's transaction (from async code: `conn.run_sync`)."""
    principal = ctx.require_principal()
    ids = [str(i) if not isinstance(i, int | str) else i for i in record_ids[:_MAX_IDS]]
    if len(record_ids) > _MAX_IDS:
        ids.append(f"... and {len(record_ids) - _MAX_IDS} more")
    conn.execute(
        audit_log.insert().values(
            username=principal.username,
            principal=(principal.api_key_id and f"api_key:{principal.api_key_id}") or "user",
            actor=access.actor,
            reason=access.reason,
            operation=operation_name,
            table_name=table,
            record_ids=ids,
        )
    )


@operation("audit.query", scope="audit:read", read_only=True)
async def query(ctx: Context, params: AuditQuery) -> list[AuditEntry]:
    """Audit entries of secure tables, newest first, filtered by table, actor, operation, time."""
    conditions = []
    if params.table:
        conditions.append(audit_log.c.table_name == params.table)
    if params.actor:
        conditions.append(audit_log.c.actor == params.actor)
    if params.operation:
        conditions.append(audit_log.c.operation == params.operation)
    if params.since:
        conditions.append(audit_log.c.at >= params.since)
    if params.until:
        conditions.append(audit_log.c.at < params.until)
    statement = (
        select(audit_log).where(*conditions).order_by(audit_log.c.id.desc()).limit(params.limit)
    )
    async with ctx.platform.db.read(ctx.tenant) as conn:
        rows = (await conn.execute(statement)).mappings().all()
    return [
        AuditEntry(
            id=r["id"],
            at=r["at"],
            username=r["username"],
            principal=r["principal"],
            actor=r["actor"],
            reason=r["reason"],
            operation=r["operation"],
            table=r["table_name"],
            record_ids=r["record_ids"],
        )
        for r in rows
    ]
