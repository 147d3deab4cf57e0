"""`client.policy`: checks against the tenant's policies (Taruvi policy; Cerbos
CheckResources and PlanResources)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from roost.client._core.namespace import Namespace
from roost.client._core.policies import (
    EntryLike,
    PrincipalLike,
    ResourceLike,
    keep_allowed,
    wire,
)
from roost.client._core.results import decode
from roost.wire.policy import CheckResponse, PlanResponse, Resource

if TYPE_CHECKING:
    from roost.client._async.client import AsyncClient

R = TypeVar("R", bound=ResourceLike)


class AsyncPolicy(Namespace):
    """Policy checks; each needs the scope `policy:check`.

    Leave `principal` out to check as yourself (your user id, roles and profile). A
    `principal` or `aux_data` of your own choosing needs `policies:read` as well: a backend
    service checking for its users holds both. Principals are `{"id", "roles", "attr"}` and
    resources `{"kind", "id", "attr"}` (with optional `policyVersion` and `scope`), as in
    Cerbos.
    """

    _client: AsyncClient

    async def check(
        self,
        principal: PrincipalLike | None = None,
        resources: Sequence[EntryLike] = (),
        aux_data: Mapping[str, Any] | None = None,
    ) -> CheckResponse:
        """Cerbos' CheckResources: each resource with the actions asked about it; the answer
        has one result per resource with each action's effect, the policy that decided it,
        the effective derived roles and the rules' outputs.

        Example:
            answer = await client.policy.check(resources=[
                {"resource": {"kind": "document", "id": "d1", "attr": {"owner": "u1"}},
                 "actions": ["view", "edit"]}])
            if answer.results[0].is_allowed("edit"): ...
        """
        params = {
            "principal": wire(principal),
            "resources": wire(list(resources)),
            "aux_data": wire(aux_data),
        }
        answer = await self._client.call("policy.check", params, idempotent=True)
        return decode(answer, CheckResponse)

    async def check_resources(
        self,
        principal: PrincipalLike | None = None,
        resources: Sequence[ResourceLike] = (),
        actions: Sequence[str] = (),
        aux_data: Mapping[str, Any] | None = None,
    ) -> dict[str, dict[str, bool]]:
        """Each of `actions` on each resource (which need distinct ids), as
        `{resource id: {action: allowed}}`.

        Example:
            allowed = await client.policy.check_resources(
                principal={"id": "user123", "roles": ["editor"]},
                resources=[{"kind": "document", "id": "doc1", "attr": {"owner": "user123"}}],
                actions=["view", "edit", "delete"])
            # {"doc1": {"view": True, "edit": True, "delete": False}}
        """
        answer = await self._client.call(
            "policy.check_resources",
            _same_actions(principal, resources, actions, aux_data),
            idempotent=True,
        )
        return decode(answer, dict[str, dict[str, bool]])

    async def filter_allowed(
        self,
        principal: PrincipalLike | None = None,
        resources: Sequence[R] = (),
        actions: Sequence[str] = (),
        aux_data: Mapping[str, Any] | None = None,
    ) -> list[R]:
        """The resources (your own objects, in order) on which every one of `actions` is
        allowed.

        Example:
            editable = await client.policy.filter_allowed(resources=documents, actions=["edit"])
        """
        answer = await self._client.call(
            "policy.filter_allowed",
            _same_actions(principal, resources, actions, aux_data),
            idempotent=True,
        )
        return keep_allowed(resources, decode(answer, list[Resource]))

    async def get_allowed_actions(
        self,
        principal: PrincipalLike | None = None,
        resource: ResourceLike | None = None,
        actions: Sequence[str] = (),
        aux_data: Mapping[str, Any] | None = None,
    ) -> list[str]:
        """Which of `actions` are allowed on `resource`, in the order asked.

        Example:
            actions = await client.policy.get_allowed_actions(
                resource={"kind": "document", "id": "doc1", "attr": {"owner": "user123"}},
                actions=["view", "edit", "delete", "publish"])
            # ["view", "edit"]
        """
        params = {
            "principal": wire(principal),
            "resource": wire(resource),
            "actions": list(actions),
            "aux_data": wire(aux_data),
        }
        answer = await self._client.call("policy.get_allowed_actions", params, idempotent=True)
        return decode(answer, list[str])

    async def plan(
        self,
        principal: PrincipalLike | None = None,
        resource_kind: str = "",
        action: str = "",
        *,
        policy_version: str = "",
        scope: str = "",
        attr: Mapping[str, Any] | None = None,
        aux_data: Mapping[str, Any] | None = None,
    ) -> PlanResponse:
        """Cerbos' PlanResources: whether `action` on resources of `resource_kind` is always
        allowed (`KIND_ALWAYS_ALLOWED`), never (`KIND_ALWAYS_DENIED`), or where a condition on
        their attributes holds (`KIND_CONDITIONAL`, with that condition as an
        operator/operands tree in `filter.condition`). `attr`: attributes already known.

        Example:
            plan = await client.policy.plan(None, "document", "view")
            print(plan.filter.kind, plan.filter.condition)
        """
        params = {
            "principal": wire(principal),
            "resource_kind": resource_kind,
            "action": action,
            "policy_version": policy_version,
            "scope": scope,
            "attr": wire(attr),
            "aux_data": wire(aux_data),
        }
        answer = await self._client.call("policy.plan", params, idempotent=True)
        return decode(answer, PlanResponse)


def _same_actions(
    principal: PrincipalLike | None,
    resources: Sequence[ResourceLike],
    actions: Sequence[str],
    aux_data: Mapping[str, Any] | None,
) -> dict[str, Any]:
    return {
        "principal": wire(principal),
        "resources": wire(list(resources)),
        "actions": list(actions),
        "aux_data": wire(aux_data),
    }
