"""One check of the caller against the policies guarding a bound stream, queue, bucket,
function or table (`policies.bind`): for the services that act on one thing at a time (an
event, a file, a call). Rows selected by a condition are `database/rowpolicy.py`'s.

Not bound: allowed (its scopes alone decide, and were checked before). Bound: the caller is
the principal (no role: denied) and the thing a resource of the binding's kind, with `attr`
as its attributes. Attributes the engine refuses (nested too deep) deny; they never fail the
caller's feed or call with an error about someone else's data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, false

from roost.errors import AuthorizationError, ValidationError
from roost.policy.sql import SqlColumn, condition_sql
from roost.services.context import Context
from roost.services.policy import caller_principal
from roost.services.policystore import Guard, policy_guard
from roost.wire.policy import Resource, ResourceEntry


def allows(ctx: Context, guard: Guard, action: str, resource_id: str, attr: dict[str, Any]) -> bool:
    """Whether the caller may `action` the resource `resource_id` with `attr`."""
    principal = caller_principal(ctx)
    if principal is None:
        return False
    binding = guard.binding
    entry = ResourceEntry(
        resource=Resource(
            kind=binding.resource_kind,
            id=resource_id,
            attr=attr,
            policy_version=binding.policy_version,
            scope=binding.scope,
        ),
        actions=[action],
    )
    try:
        return guard.engine.check(principal, [entry]).results[0].is_allowed(action)
    except ValidationError:
        return False


def always_allowed(ctx: Context, guard: Guard, action: str) -> bool:
    """Whether the caller may `action` every resource of the binding's kind, whatever its
    attributes (the plan is KIND_ALWAYS_ALLOWED)."""
    principal = caller_principal(ctx)
    if principal is None:
        return False
    binding = guard.binding
    plan = guard.engine.plan(
        principal,
        binding.resource_kind,
        action,
        policy_version=binding.policy_version,
        scope=binding.scope,
    )
    return plan.filter.kind == "KIND_ALWAYS_ALLOWED"


def plan_condition(
    ctx: Context,
    guard: Guard,
    action: str,
    attrs: Mapping[str, SqlColumn],
    id_column: SqlColumn,
    where: str,
) -> ColumnElement[bool] | None:
    """The SQL condition of the resources the caller may `action` (None: every one), from
    the plan of the binding's kind; `attrs` are the columns conditions may read as `R.attr`,
    `where` names the thing in a refusal (`PlanNotCompilable`, 422)."""
    principal = caller_principal(ctx)
    if principal is None:
        return false()
    binding = guard.binding
    plan = guard.engine.plan(
        principal,
        binding.resource_kind,
        action,
        policy_version=binding.policy_version,
        scope=binding.scope,
        mark_conditions=True,
    ).filter
    if plan.kind == "KIND_ALWAYS_ALLOWED":
        return None
    if plan.kind == "KIND_ALWAYS_DENIED" or plan.condition is None:
        return false()
    return condition_sql(plan.condition, attrs, id_column, ctx.platform.db.dialect, where)


async def may(
    ctx: Context, target: str, name: str, action: str, resource_id: str, attr: dict[str, Any]
) -> bool:
    """Whether the caller may `action` this resource of `target` `name` (True if unbound)."""
    guard = await policy_guard(ctx, target, name)
    return guard is None or allows(ctx, guard, action, resource_id, attr)


async def require(
    ctx: Context,
    target: str,
    name: str,
    action: str,
    resource_id: str,
    attr: dict[str, Any],
    *,
    field: str = "name",
) -> None:
    """AuthorizationError (`policy_denied`) unless the caller may `action` the resource."""
    if not await may(ctx, target, name, action, resource_id, attr):
        raise AuthorizationError(
            f"the policies do not allow you to {action} {resource_id[:120]!r} of {target} {name!r}",
            code="policy_denied",
            details={"field": field, "action": action},
        )
