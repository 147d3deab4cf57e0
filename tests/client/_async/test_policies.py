"""`client.policies` on SQLite and PostgreSQL: put from texts, objects and folders, list, get,
versions, delete and globals, with the results as Structs."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost import AsyncClient, Policy, PolicyList, PutPoliciesResult, ValidationError
from tests.conftest import ADMIN_USERNAME, RunningServer
from tests.policy_documents import allow, key_of, kind_name, owner_policies, resource_policy


@pytest.mark.anyio
async def test_put_reads_a_folder_as_cerbos_does(
    server: RunningServer, admin_token: str, tmp_path: Path
) -> None:
    kind, extra = kind_name(), kind_name()
    (tmp_path / "nested").mkdir()
    (tmp_path / "testdata").mkdir()
    (tmp_path / "owners.yaml").write_text(owner_policies(kind))
    (tmp_path / "nested" / "extra.yml").write_text(
        f"apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: {extra}\n"
        "  version: default\n  rules: []\n"
    )
    (tmp_path / "owners_test.yaml").write_text("not: a policy")  # a test suite: left out
    (tmp_path / "testdata" / "principals.yaml").write_text("principals: {}")  # fixtures
    (tmp_path / "notes.txt").write_text("neither")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        result = await admin.policies.put(tmp_path)
        assert isinstance(result, PutPoliciesResult)
        assert sorted(result.created) == sorted(
            [f"derived_roles.{kind}_roles", key_of(kind), key_of(extra)]
        )
        listed = await admin.policies.list()
        assert isinstance(listed, PolicyList)
        assert {key_of(kind), key_of(extra)} <= {p.key for p in listed.policies}
        stored = await admin.policies.get(key_of(extra))
        assert isinstance(stored, Policy)
        assert (stored.document["resourcePolicy"]["resource"], stored.updated_by) == (
            extra,
            ADMIN_USERNAME,
        )
        assert await admin.policies.delete(key_of(extra)) == 1


@pytest.mark.anyio
async def test_put_takes_objects_and_texts_and_versions_keep_them(
    server: RunningServer, admin_token: str
) -> None:
    kind = kind_name()
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        await admin.policies.put(resource_policy(kind, [allow(["view"], ["user"])]))
        text = f"""
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: {kind}
  version: default
  rules:
    - actions: [view, edit]
      effect: EFFECT_ALLOW
      roles: [user]
"""
        assert (await admin.policies.put([text])).updated == [key_of(kind)]
        history = await admin.policies.versions(key_of(kind), limit=5)
        assert [change.change for change in history] == ["put", "put"]
        assert history[0].document is not None
        assert history[0].document["resourcePolicy"]["rules"][0]["actions"] == ["view", "edit"]
        with pytest.raises(ValidationError) as refused:
            await admin.policies.put(text.replace("EFFECT_ALLOW", "EFFECT_MAYBE"))
        assert refused.value.details["issues"][0]["policy"] == "policies[0]"
        assert (await admin.policies.set_globals({"tier": "gold"})).globals == {"tier": "gold"}
        assert (await admin.policies.get_globals()).globals == {"tier": "gold"}
        await admin.policies.set_globals({})
        await admin.policies.delete(key_of(kind))
