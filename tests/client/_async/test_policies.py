"""`client.policies` on SQLite and PostgreSQL: put from texts, objects and folders, list, get,
versions, delete and globals, with the results as Structs."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost import (
    AsyncClient,
    Policy,
    PolicyList,
    PolicyTestReport,
    PutPoliciesResult,
    ValidationError,
)
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


def album_suite(kind: str, *, owner_edits: str = "EFFECT_ALLOW") -> str:
    """A Cerbos suite for `owner_policies(kind)`: its principals in testdata, its resources
    its own; `owner_edits` is what it expects of the owner's edit."""
    return f"""
name: {kind} suite
resources:
  own: {{kind: {kind}, id: r1, attr: {{owner: alicia, public: false}}}}
  public: {{kind: {kind}, id: r2, attr: {{owner: someone, public: true}}}}
tests:
  - name: owners edit, users view what is public
    input:
      principals: [alicia]
      resources: [own, public]
      actions: [view, edit]
    expected:
      - principal: alicia
        resource: own
        actions: {{view: EFFECT_ALLOW, edit: {owner_edits}}}
      - principal: alicia
        resource: public
        actions: {{view: EFFECT_ALLOW}}
        outputs:
          - action: view
            expected: [{{src: "resource.{kind}.vdefault#public-view", val: "public r2"}}]
"""


@pytest.mark.anyio
async def test_a_suite_runs_against_the_stored_policies(
    server: RunningServer, admin_token: str
) -> None:
    kind = kind_name()
    testdata = {"principals": "principals:\n  alicia: {id: alicia, roles: [user]}\n"}
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_token(admin_token)
        await admin.policies.put(owner_policies(kind))
        revision = (await admin.policies.list()).revision
        report = await admin.policies.test(album_suite(kind), testdata)
        assert isinstance(report, PolicyTestReport)
        assert (report.passed, report.failed, report.skipped, report.ok) == (4, 0, 0, True)
        assert [(c.resource, c.action, c.actual, c.passed) for c in report.cases] == [
            ("own", "view", "EFFECT_ALLOW", True),
            ("own", "edit", "EFFECT_ALLOW", True),
            ("public", "view", "EFFECT_ALLOW", True),
            ("public", "edit", "EFFECT_DENY", True),
        ]
        failing = await admin.policies.test(album_suite(kind, owner_edits="EFFECT_DENY"), testdata)
        assert (failing.passed, failing.failed, failing.ok) == (3, 1, False)
        wrong = next(case for case in failing.cases if not case.passed)
        assert (wrong.suite, wrong.principal, wrong.resource, wrong.action) == (
            f"{kind} suite",
            "alicia",
            "own",
            "edit",
        )
        assert (wrong.expected, wrong.actual, wrong.status) == (
            "EFFECT_DENY",
            "EFFECT_ALLOW",
            "failed",
        )
        unknown = await admin.policies.test(album_suite(kind))  # alicia is in the testdata
        assert (unknown.cases, unknown.ok) == ([], False)
        assert unknown.errors[0].message == "no principal 'alicia'"
        assert (await admin.policies.list()).revision == revision  # nothing was stored
        await admin.policies.delete(key_of(kind), f"derived_roles.{kind}_roles")
