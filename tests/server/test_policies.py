"""Policies as managed data on a real server, on SQLite and PostgreSQL: the store (versions,
validation of the whole set, concurrent changes), globals, the caller as principal, and a
change taking effect on the next call."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from roost import AsyncClient, NotFoundError, ValidationError
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique
from tests.policy_documents import allow, key_of, kind_name, owner_policies, resource_policy

pytestmark = pytest.mark.anyio

USER = {"id": "u1", "roles": ["user"]}


@pytest.fixture(scope="module")
def admin_token(server: RunningServer) -> str:
    """The admin's access token on `server`, signed in once for the module."""
    response = httpx.post(
        f"{server.url}/api/v1/auth/login",
        json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD},
        timeout=60,
    )
    response.raise_for_status()
    return str(response.json()["access"])


async def _admin(client: AsyncClient, token: str) -> AsyncClient:
    return await client.auth.sign_in_with_token(token)


async def test_a_put_stores_every_document_of_a_text_once(
    server: RunningServer, admin_token: str
) -> None:
    kind = kind_name()
    async with AsyncClient(api_url=server.url) as client:
        admin = await _admin(client, admin_token)
        first = await admin.policies.put(owner_policies(kind))
        assert sorted(first.created) == [f"derived_roles.{kind}_roles", key_of(kind)]
        assert (first.updated, first.unchanged) == ([], [])
        again = await admin.policies.put(owner_policies(kind))  # a CI push of the same folder
        assert (again.revision, again.created, again.updated) == (first.revision, [], [])
        assert sorted(again.unchanged) == sorted(first.created)
        listed = await admin.policies.list()
        info = {p.key: p for p in listed.policies}[key_of(kind)]
        assert (info.kind, info.name, info.version, info.scope) == ("resource", kind, "default", "")
        assert (info.revision, info.updated_by, info.disabled) == (
            first.revision,
            ADMIN_USERNAME,
            False,
        )
        assert listed.revision >= first.revision
        stored = await admin.policies.get(key_of(kind))
        assert stored.document["resourcePolicy"]["resource"] == kind
        with pytest.raises(NotFoundError) as missing:
            await admin.policies.get(key_of(unique("nothing_")))
        assert missing.value.details["field"] == "key"


async def test_an_invalid_set_is_refused_with_every_problem_and_nothing_changes(
    server: RunningServer, admin_token: str
) -> None:
    kind, other = kind_name(), kind_name()
    async with AsyncClient(api_url=server.url) as client:
        admin = await _admin(client, admin_token)
        before = await admin.policies.list()
        broken = resource_policy(
            kind, [allow(["view"], ["user"], "R.attr.x ===")], importDerivedRoles=["no_such"]
        )
        good = resource_policy(other, [allow(["view"], ["user"])])
        with pytest.raises(ValidationError) as refused:
            await admin.policies.put([broken, good, good, "resourcePolicy: [", {"apiVersion": 1}])
        error = refused.value
        assert (error.code, error.details["field"]) == ("invalid_policy", "policies")
        problems = {(i["policy"], i["path"]) for i in error.details["issues"]}
        assert (key_of(kind), "importDerivedRoles[0]") in problems
        assert (key_of(kind), "rules[0].condition.match.expr") in problems
        assert (key_of(other), "") in problems  # sent twice
        assert ("policies[3]", "") in problems  # not YAML
        assert ("policies[4]", "") in problems  # not a policy
        after = await admin.policies.list()
        assert after.revision == before.revision
        assert not {key_of(kind), key_of(other)} & {p.key for p in after.policies}


async def test_every_change_is_a_version_with_who_and_when(
    server: RunningServer, admin_token: str
) -> None:
    kind = kind_name()
    async with AsyncClient(api_url=server.url) as client:
        admin = await _admin(client, admin_token)
        made = await admin.policies.put(resource_policy(kind, [allow(["view"], ["user"])]))
        changed = await admin.policies.put(
            resource_policy(kind, [allow(["view", "edit"], ["user"])])
        )
        assert changed.updated == [key_of(kind)]
        assert await admin.policies.delete(key_of(kind)) == 1
        history = await admin.policies.versions(key_of(kind))
        assert [(c.change, c.by) for c in history] == [
            ("delete", ADMIN_USERNAME),
            ("put", ADMIN_USERNAME),
            ("put", ADMIN_USERNAME),
        ]
        assert [c.revision for c in history][1:] == [changed.revision, made.revision]
        assert history[0].document is None
        assert history[1].document is not None
        assert history[1].document["resourcePolicy"]["rules"][0]["actions"] == ["view", "edit"]
        assert history[0].at >= history[2].at
        page = await admin.policies.versions(limit=2)
        assert len(page) == 2
        assert page[0].id > page[1].id
        rest = await admin.policies.versions(limit=2, before=page[-1].id)
        assert all(c.id < page[-1].id for c in rest)
        with pytest.raises(NotFoundError):
            await admin.policies.versions(key_of(unique("never_")))


async def test_a_delete_that_would_leave_an_invalid_set_is_refused(
    server: RunningServer, admin_token: str
) -> None:
    kind = kind_name()
    async with AsyncClient(api_url=server.url) as client:
        admin = await _admin(client, admin_token)
        await admin.policies.put(owner_policies(kind))
        with pytest.raises(ValidationError) as refused:
            await admin.policies.delete(f"derived_roles.{kind}_roles")  # still imported
        assert refused.value.details["field"] == "keys"
        assert refused.value.details["issues"][0]["policy"] == key_of(kind)
        with pytest.raises(NotFoundError) as missing:
            await admin.policies.delete(key_of(kind), key_of(unique("ghost_")))
        assert missing.value.details["field"] == "keys"
        assert key_of(kind) in {p.key for p in (await admin.policies.list()).policies}
        assert await admin.policies.delete(key_of(kind), f"derived_roles.{kind}_roles") == 2


async def test_a_change_takes_effect_on_the_next_call(
    server: RunningServer, admin_token: str
) -> None:
    kind = kind_name()
    doc = {"kind": kind, "id": "d1", "attr": {"owner": "someone"}}
    async with AsyncClient(api_url=server.url) as client:
        admin = await _admin(client, admin_token)

        async def ask() -> dict[str, dict[str, bool]]:
            return await admin.policy.check_resources(USER, [doc], ["view"])

        assert await ask() == {"d1": {"view": False}}  # no policy for the kind
        await admin.policies.put(resource_policy(kind, [allow(["view"], ["user"])]))
        assert await ask() == {"d1": {"view": True}}
        await admin.policies.put(resource_policy(kind, [allow(["view"], ["user"], "false")]))
        assert await ask() == {"d1": {"view": False}}
        await admin.policies.delete(key_of(kind))
        assert await ask() == {"d1": {"view": False}}


async def test_concurrent_changes_each_get_a_revision_and_none_is_lost(
    server: RunningServer, admin_token: str
) -> None:
    kinds = [kind_name() for _ in range(5)]
    async with AsyncClient(api_url=server.url) as client:
        admin = await _admin(client, admin_token)
        results = await asyncio.gather(
            *(admin.policies.put(resource_policy(k, [allow(["view"], ["user"])])) for k in kinds)
        )
        assert len({r.revision for r in results}) == len(kinds)
        stored = {p.key for p in (await admin.policies.list()).policies}
        assert {key_of(k) for k in kinds} <= stored


async def test_globals_come_from_the_server_with_the_tenants_over_them(
    make_server: Callable[..., RunningServer],
) -> None:
    running = make_server(policy_globals={"env": "dev", "region": "eu"})
    kind = kind_name()
    rule = allow(["view"], ["user"], 'G.env == "dev" && G.region == "eu"')
    async with AsyncClient(api_url=running.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        await admin.policies.put(resource_policy(kind, [rule]))
        doc = {"kind": kind, "id": "d1"}
        assert await admin.policy.check_resources(USER, [doc], ["view"]) == {"d1": {"view": True}}
        changed = await admin.policies.set_globals({"env": "prod"})
        assert changed.globals == {"env": "prod"}
        assert changed.effective == {"env": "prod", "region": "eu"}
        assert await admin.policy.check_resources(USER, [doc], ["view"]) == {"d1": {"view": False}}
        assert (await admin.policies.get_globals()).effective["env"] == "prod"
        assert (await admin.policies.list()).globals == {"env": "prod"}
        history = await admin.policies.versions()
        assert (history[0].change, history[0].key, history[0].document) == (
            "globals",
            "",
            {"env": "prod"},
        )
        await admin.policies.set_globals({})
        assert await admin.policy.check_resources(USER, [doc], ["view"]) == {"d1": {"view": True}}


async def test_the_caller_is_the_principal_with_their_roles_and_profile(
    server: RunningServer, admin_token: str
) -> None:
    kind, role, name = kind_name(), unique("checker"), unique("ann")
    rules = [
        allow(["view"], ["member"], "R.attr.owner == P.id"),
        allow(["edit"], [role], "P.attr.username == R.attr.author && !P.attr.is_staff"),
    ]
    async with AsyncClient(api_url=server.url) as client:
        admin = await _admin(client, admin_token)
        await admin.policies.put(resource_policy(kind, rules))
        await admin.roles.create(role, ["policy:check"])
        made = await admin.users.create_user(name, "ann-password-1", roles=[role, "member"])
        ann = await client.auth.sign_in_with_password(name, "ann-password-1")
        mine = {"kind": kind, "id": "a", "attr": {"owner": made["id"], "author": name}}
        theirs = {"kind": kind, "id": "b", "attr": {"owner": "someone", "author": "other"}}
        assert await ann.policy.check_resources(
            resources=[mine, theirs], actions=["view", "edit"]
        ) == {
            "a": {"view": True, "edit": True},
            "b": {"view": False, "edit": False},
        }
        assert await ann.policy.filter_allowed(resources=[theirs, mine], actions=["view"]) == [mine]
        assert await ann.policy.get_allowed_actions(resource=mine, actions=["edit", "x"]) == [
            "edit"
        ]
        plan = await ann.policy.plan(None, kind, "view")
        assert plan.filter.kind == "KIND_CONDITIONAL"
        assert plan.filter.condition == {
            "expression": {
                "operator": "eq",
                "operands": [{"variable": "request.resource.attr.owner"}, {"value": made["id"]}],
            }
        }


async def test_a_caller_with_no_role_is_denied_everything(
    server: RunningServer, admin_token: str
) -> None:
    kind, name = kind_name(), unique("bare")
    async with AsyncClient(api_url=server.url) as client:
        admin = await _admin(client, admin_token)
        await admin.policies.put(resource_policy(kind, [allow(["*"], ["*"])]))
        await admin.users.create_user(name, "bare-password-1", is_superuser=True)
        await admin.users.revoke_roles(["member"], [name])  # scopes from is_superuser only
        bare = await client.auth.sign_in_with_password(name, "bare-password-1")
        answer = await bare.policy.check(
            resources=[{"resource": {"kind": kind, "id": "x"}, "actions": ["view"]}]
        )
        result = answer.results[0]
        assert result.actions == {"view": "EFFECT_DENY"}
        assert result.meta.actions["view"].matched_policy == "NO_MATCH"
        assert (await bare.policy.plan(None, kind, "view")).filter.kind == "KIND_ALWAYS_DENIED"


async def test_each_tenant_has_its_own_policies(server: RunningServer, admin_token: str) -> None:
    kind, tenant = kind_name(), unique("pol")
    async with AsyncClient(api_url=server.url) as client:
        admin = await _admin(client, admin_token)
        await admin.policies.put(resource_policy(kind, [allow(["view"], ["user"])]))
        await admin.tenants.create(tenant, admin_username="root", admin_password="root-password")
        async with AsyncClient(api_url=server.url, tenant=tenant) as other:
            root = await other.auth.sign_in_with_password("root", "root-password")
            assert (await root.policies.list()).policies == []
            doc = {"kind": kind, "id": "d"}
            assert await root.policy.check_resources(USER, [doc], ["view"]) == {
                "d": {"view": False}
            }
            await root.policies.put(resource_policy(kind, [allow(["view"], ["nobody"])]))
        assert await admin.policy.check_resources(USER, [doc], ["view"]) == {"d": {"view": True}}
        await admin.tenants.delete(tenant)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_schemas_of_a_folder_are_stored_and_enforced_as_the_server_says(
    make_server: Callable[..., RunningServer], tmp_path: Path, backend: str
) -> None:
    running = make_server(backend, policy_schema_enforcement="reject")
    kind = kind_name()
    folder = tmp_path / "policies"
    (folder / "_schemas").mkdir(parents=True)
    schema = {"type": "object", "properties": {"n": {"type": "number", "minimum": 0}}}
    (folder / "_schemas" / "doc.json").write_text(json.dumps(schema))
    policy = resource_policy(
        kind,
        [allow(["view"], ["user"])],
        schemas={"resourceSchema": {"ref": "cerbos:///doc.json"}},
    )
    (folder / "doc.yaml").write_text(json.dumps(policy))
    async with AsyncClient(api_url=running.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        with pytest.raises(ValidationError) as caught:  # the policy without its schema
            await admin.policies.put(policy)
        assert caught.value.details["issues"][0]["path"] == "schemas.resourceSchema.ref"
        stored = await admin.policies.put(folder)
        assert set(stored.created) == {key_of(kind), "schema.doc.json"}
        listed = {info.key: info.kind for info in (await admin.policies.list()).policies}
        assert listed["schema.doc.json"] == "schema"
        entries = [
            {"resource": {"kind": kind, "id": "ok", "attr": {"n": 1}}, "actions": ["view"]},
            {"resource": {"kind": kind, "id": "bad", "attr": {"n": -1}}, "actions": ["view"]},
        ]
        answer = await admin.policy.check(USER, entries)
        assert [r.actions["view"] for r in answer.results] == ["EFFECT_ALLOW", "EFFECT_DENY"]
        assert answer.results[1].validation_errors[0]["path"] == "/n"
        with pytest.raises(ValidationError):  # a schema still named cannot go
            await admin.policies.delete("schema.doc.json")
