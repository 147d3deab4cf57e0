"""Policies on the rows of a bound table (`policies.bind("table", ...)`).

Each row is a resource of the binding's kind: its columns are `R.attr`, its primary key (as
text) `R.id`. The caller is the principal (`services/policy.caller_principal`: a caller with
no role is denied everything). Records named one by one (get, update and delete by id,
create) are checked with the engine; reads and writes that select rows by a condition
(query, count, pages, export, update and delete by filters) add the plan of the action,
compiled to SQL (`roost.policy.sql`), to their WHERE clause, so rows are never loaded to be
filtered. Scopes are checked before any of this, by the operation itself.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec
from sqlalchemy import ColumnElement, Table

from roost.errors import AuthorizationError, ValidationError
from roost.policy.sql import Family, SqlColumn
from roost.services import guards
from roost.services.context import Context
from roost.services.policy import caller_principal
from roost.services.policystore import Guard, policy_guard
from roost.services.tabledefs import TableDef
from roost.wire.policy import Principal, Resource, ResourceEntry

_NUMBERS = ("integer", "bigint")


class RowPolicy(msgspec.Struct, frozen=True):
    """The policies over one bound table, for one caller."""

    guard: Guard
    principal: Principal | None
    definition: TableDef
    table: Table
    dialect: str

    ctx: Context

    def condition(self, action: str) -> ColumnElement[bool] | None:
        """The SQL condition of the rows the caller may `action` (None: every row)."""
        attrs = {
            c.name: SqlColumn(self.table.c[c.name], _family(c.type))
            for c in self.definition.columns
        }
        pk = self.definition.primary_key
        id_family: Family = "string" if _family(pk.type) == "string" else "other"
        if pk.type in _NUMBERS:
            id_family = "integer_id"
        elif pk.type == "uuid":
            id_family = "uuid"
        id_column = SqlColumn(self.table.c[pk.name], id_family)
        where = f"table {self.definition.name!r}"
        return guards.plan_condition(self.ctx, self.guard, action, attrs, id_column, where)

    def where(self, action: str) -> list[ColumnElement[bool]]:
        """`condition(action)` as a WHERE clause's list of conditions."""
        found = self.condition(action)
        return [] if found is None else [found]

    def allowed(self, action: str, rows: Iterable[dict[str, Any]]) -> list[bool]:
        """Whether the caller may `action` each row, in order."""
        rows = list(rows)
        if self.principal is None or not rows:
            return [False] * len(rows)
        binding = self.guard.binding
        key = self.definition.primary_key.name
        entries = [
            ResourceEntry(
                resource=Resource(
                    kind=binding.resource_kind,
                    id=str(row.get(key, "")),
                    attr=record_attr(row),
                    policy_version=binding.policy_version,
                    scope=binding.scope,
                ),
                actions=[action],
            )
            for row in rows
        ]
        try:
            answer = self.guard.engine.check(self.principal, entries)
        except ValidationError:  # a row the engine refuses (JSON nested too deep): denied
            return [False] * len(rows) if len(rows) == 1 else self._one_by_one(action, rows)
        return [result.is_allowed(action) for result in answer.results]

    def _one_by_one(self, action: str, rows: list[dict[str, Any]]) -> list[bool]:
        return [self.allowed(action, [row])[0] for row in rows]

    def require(self, action: str, rows: Iterable[dict[str, Any]]) -> None:
        """AuthorizationError unless the caller may `action` every row."""
        rows = list(rows)
        key = self.definition.primary_key.name
        for row, ok in zip(rows, self.allowed(action, rows), strict=True):
            if not ok:
                raise AuthorizationError(
                    f"the policies do not allow you to {action} this row of "
                    f"{self.definition.name} (id {str(row.get(key))[:80]!r}); nothing was changed",
                    code="policy_denied",
                    details={"field": "id", "action": action},
                )


async def row_policy(ctx: Context, definition: TableDef, table: Table) -> RowPolicy | None:
    """The policies over `definition`'s rows for the caller, None when the table is not
    bound."""
    guard = await policy_guard(ctx, "table", definition.name)
    if guard is None:
        return None
    return RowPolicy(guard, caller_principal(ctx), definition, table, ctx.platform.db.dialect, ctx)


def record_attr(row: dict[str, Any]) -> dict[str, Any]:
    """A row as JSON values, as a resource's `attr` (and as the wire sends it)."""
    return {name: _json_value(value) for name, value in row.items()}


def _json_value(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def _family(column_type: str) -> Family:
    if column_type == "text" or column_type.startswith("varchar("):
        return "string"
    if column_type in _NUMBERS or column_type.startswith("decimal("):
        return "number"
    if column_type == "boolean":
        return "bool"
    if column_type == "uuid":
        return "uuid"
    return "other"
