"""Checks against the tenant's policies (`policy.*`): Cerbos' CheckResources and
PlanResources, and Taruvi's `check_resources`, `filter_allowed` and `get_allowed_actions`.

Who may ask about whom. Every check needs `policy:check`. Without a `principal` the caller is
the principal, as the server knows them: their user id, their roles, and their profile as
`attr` (`accounts.policy_attributes`). A `principal` of the caller's choosing, or `aux_data`
(which policies read as facts about the request, such as JWT claims, and which Roost does not
verify), also needs `policies:read`: answers about another user, or about roles and claims
one does not have, tell what the policies grant to whom, and a reader of the policies could
work that out from them anyway. So a user can always learn what they themselves may do, and
only policy readers (typically a backend service checking for its own users) can ask about
anyone. A check grants nothing: enforcement (rows, files, feeds, functions) uses the caller,
never a principal the caller names.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from roost.errors import AuthorizationError, ValidationError
from roost.services.context import Context
from roost.services.policystore import policy_engine
from roost.services.registry import operation
from roost.wire.policy import (
    ActionMeta,
    AllowedActionsRequest,
    CheckRequest,
    CheckResponse,
    CheckResult,
    PlanFilter,
    PlanRequest,
    PlanResponse,
    Principal,
    Resource,
    ResourceEntry,
    ResourcesCheckRequest,
    ResultMeta,
    ResultResource,
)

if TYPE_CHECKING:
    from roost.policy import Engine  # imported where policies are compiled (policystore)

_READ_POLICIES = "policies:read"
_INLINE = 20  # resources checked on the event loop; larger checks run in a worker thread
_NO_MATCH = "NO_MATCH"


def caller_principal(ctx: Context) -> Principal | None:
    """The caller as a policy principal (None for a caller with no role: no rule names them,
    so every action is denied)."""
    caller = ctx.require_principal()
    if not caller.roles:
        return None
    return Principal(id=caller.user_id, roles=list(caller.roles), attr=dict(caller.profile))


def _asking_as(
    ctx: Context, principal: Principal | None, aux_data: dict[str, Any] | None
) -> Principal | None:
    """The principal a check is about: the caller, or the one given by a caller allowed to."""
    caller = ctx.require_principal()
    for given, field in ((principal, "principal"), (aux_data, "aux_data")):
        if given is not None and not caller.allows(_READ_POLICIES):
            raise AuthorizationError(
                f"checking with a {field} of your choosing needs the scope {_READ_POLICIES} "
                f"(leave {field} out to check as yourself)",
                code="missing_scope",
                details={"field": field, "scope": _READ_POLICIES},
            )
    return principal if principal is not None else caller_principal(ctx)


async def _check(
    ctx: Context,
    principal: Principal | None,
    entries: list[ResourceEntry],
    aux_data: dict[str, Any] | None,
) -> CheckResponse:
    who = _asking_as(ctx, principal, aux_data)
    if who is None:
        return _denied(entries)
    engine = await policy_engine(ctx)
    if len(entries) <= _INLINE:
        return engine.check(who, entries, aux_data)
    return await asyncio.to_thread(engine.check, who, entries, aux_data)


def _denied(entries: list[ResourceEntry]) -> CheckResponse:
    """Every action denied, no policy matched: the answer for a principal with no role."""
    return CheckResponse(
        [
            CheckResult(
                resource=ResultResource(
                    entry.resource.id,
                    entry.resource.kind,
                    entry.resource.policy_version,
                    entry.resource.scope,
                ),
                actions={action: "EFFECT_DENY" for action in entry.actions},
                meta=ResultMeta({action: ActionMeta(_NO_MATCH) for action in entry.actions}),
            )
            for entry in entries
        ]
    )


@operation("policy.check", scope="policy:check", read_only=True)
async def check(ctx: Context, params: CheckRequest) -> CheckResponse:
    """Cerbos' CheckResources: the effect of each action on each resource, with the matched
    policy and scope, the effective derived roles and the rules' outputs. Without `principal`
    the caller is the principal."""
    return await _check(ctx, params.principal, params.resources, params.aux_data)


def _same_actions(resources: list[Resource], actions: list[str]) -> list[ResourceEntry]:
    return [ResourceEntry(resource=resource, actions=actions) for resource in resources]


@operation("policy.check_resources", scope="policy:check", read_only=True)
async def check_resources(
    ctx: Context, params: ResourcesCheckRequest
) -> dict[str, dict[str, bool]]:
    """Taruvi's shape: `{resource id: {action: allowed}}` for the same actions on each
    resource (ids must differ)."""
    seen: dict[str, int] = {}
    for index, resource in enumerate(params.resources):
        if not resource.id:
            raise ValidationError(
                "each resource needs an id: the answer is keyed by it",
                details={"field": f"resources[{index}].id"},
            )
        if resource.id in seen:
            raise ValidationError(
                f"resources[{seen[resource.id]}] and resources[{index}] have the same id "
                f"{resource.id!r}: the answer is keyed by id",
                details={"field": f"resources[{index}].id"},
            )
        seen[resource.id] = index
    answer = await _check(
        ctx, params.principal, _same_actions(params.resources, params.actions), params.aux_data
    )
    return {
        result.resource.id: {action: result.is_allowed(action) for action in params.actions}
        for result in answer.results
    }


@operation("policy.filter_allowed", scope="policy:check", read_only=True)
async def filter_allowed(ctx: Context, params: ResourcesCheckRequest) -> list[Resource]:
    """Taruvi's shape: the resources on which every one of `actions` is allowed, in order."""
    answer = await _check(
        ctx, params.principal, _same_actions(params.resources, params.actions), params.aux_data
    )
    return [
        resource
        for resource, result in zip(params.resources, answer.results, strict=True)
        if all(result.is_allowed(action) for action in params.actions)
    ]


@operation("policy.get_allowed_actions", scope="policy:check", read_only=True)
async def get_allowed_actions(ctx: Context, params: AllowedActionsRequest) -> list[str]:
    """Taruvi's shape: which of `actions` are allowed on the resource, in the order asked."""
    entries = [ResourceEntry(resource=params.resource, actions=params.actions)]
    result = (await _check(ctx, params.principal, entries, params.aux_data)).results[0]
    return [action for action in dict.fromkeys(params.actions) if result.is_allowed(action)]


@operation("policy.plan", scope="policy:check", read_only=True)
async def plan(ctx: Context, params: PlanRequest) -> PlanResponse:
    """Cerbos' PlanResources: whether `action` on resources of `resource_kind` is always
    allowed, always denied, or allowed where the residual condition holds (an
    operator/operands tree over the attributes not given in `attr`). Without `principal` the
    caller is the principal."""
    who = _asking_as(ctx, params.principal, params.aux_data)
    if who is None:
        return PlanResponse(
            action=params.action,
            resource_kind=params.resource_kind,
            policy_version=params.policy_version or "default",
            filter=PlanFilter(kind="KIND_ALWAYS_DENIED"),
        )
    engine: Engine = await policy_engine(ctx)
    return engine.plan(
        who,
        params.resource_kind,
        params.action,
        policy_version=params.policy_version,
        scope=params.scope,
        attr=params.attr,
        aux_data=params.aux_data,
    )
