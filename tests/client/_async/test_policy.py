"""`client.policy` on SQLite and PostgreSQL: Cerbos' CheckResources and PlanResources shapes,
and Taruvi's check_resources, filter_allowed and get_allowed_actions."""

from __future__ import annotations

import pytest

from roost import AsyncClient, CheckResponse, PlanResponse, PolicyPrincipal, PolicyResource
from tests.conftest import RunningServer
from tests.policy_documents import key_of, kind_name, owner_policies

ALICE = {"id": "alice", "roles": ["user"]}


@pytest.mark.anyio
async def test_check_answers_in_cerbos_shape(server: RunningServer, admin_token: str) -> None:
    kind = kind_name()
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        await admin.policies.put(owner_policies(kind))
        answer = await admin.policy.check(
            ALICE,
            [
                {
                    "resource": {"kind": kind, "id": "a", "attr": {"owner": "alice"}},
                    "actions": ["edit"],
                },
                {
                    "resource": {"kind": kind, "id": "p", "attr": {"public": True}},
                    "actions": ["view", "edit"],
                },
            ],
        )
        assert isinstance(answer, CheckResponse)
        own, public = answer.results
        assert (own.resource.id, own.actions) == ("a", {"edit": "EFFECT_ALLOW"})
        assert own.meta.actions["edit"].matched_policy == key_of(kind)
        assert own.meta.effective_derived_roles == ["owner"]
        assert public.actions == {"view": "EFFECT_ALLOW", "edit": "EFFECT_DENY"}
        assert public.is_allowed("view")
        assert not public.is_allowed("edit")
        assert [(o.src, o.val, o.action) for o in public.outputs] == [
            (f"{key_of(kind)}#public-view", "public p", "view")
        ]


@pytest.mark.anyio
async def test_taruvi_shapes(server: RunningServer, admin_token: str) -> None:
    kind = kind_name()
    mine = {"kind": kind, "id": "doc1", "attr": {"owner": "alice", "status": "draft"}}
    other = {"kind": kind, "id": "doc2", "attr": {"owner": "bob"}}
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        await admin.policies.put(owner_policies(kind, public_view=False))
        assert await admin.policy.check_resources(
            principal=ALICE, resources=[mine, other], actions=["view", "edit", "delete"]
        ) == {
            "doc1": {"view": True, "edit": True, "delete": False},
            "doc2": {"view": False, "edit": False, "delete": False},
        }
        allowed = await admin.policy.filter_allowed(
            principal=ALICE, resources=[other, mine, other], actions=["edit"]
        )
        assert allowed == [mine]
        assert allowed[0] is mine  # the caller's own objects come back
        typed = PolicyResource(kind=kind, id="doc3", attr={"owner": "alice"})
        principal = PolicyPrincipal(id="alice", roles=["user"])
        assert await admin.policy.filter_allowed(principal, [typed], ["view"]) == [typed]
        assert await admin.policy.get_allowed_actions(
            principal=ALICE, resource=mine, actions=["view", "edit", "delete", "publish"]
        ) == ["view", "edit"]


@pytest.mark.anyio
async def test_plan_answers_in_cerbos_shape(server: RunningServer, admin_token: str) -> None:
    kind = kind_name()
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        await admin.policies.put(owner_policies(kind, public_view=False))
        plan = await admin.policy.plan(ALICE, kind, "edit")
        assert isinstance(plan, PlanResponse)
        assert (plan.action, plan.resource_kind, plan.policy_version) == ("edit", kind, "default")
        assert plan.filter.kind == "KIND_CONDITIONAL"
        assert plan.filter.condition == {
            "expression": {
                "operator": "eq",
                "operands": [{"variable": "request.resource.attr.owner"}, {"value": "alice"}],
            }
        }
        known = await admin.policy.plan(ALICE, kind, "edit", attr={"owner": "alice"})
        assert known.filter.kind == "KIND_ALWAYS_ALLOWED"
        admin_plan = await admin.policy.plan({"id": "root", "roles": ["admin"]}, kind, "delete")
        assert admin_plan.filter.kind == "KIND_ALWAYS_ALLOWED"
        assert (await admin.policy.plan(ALICE, kind, "delete")).filter.kind == "KIND_ALWAYS_DENIED"
