"""Policies and checks under attack, on SQLite and PostgreSQL: each scope refused to those
without it, principals and aux data of one's own choosing refused without `policies:read`,
bombs and oversized input refused with a 4xx naming the field, and the tenant's stamp out of
reach of its KV calls."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from roost import AsyncClient, AuthorizationError, ValidationError
from roost.services.policystore import stamp_key
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, platform_of, unique
from tests.policy_documents import allow, key_of, kind_name, resource_policy

pytestmark = pytest.mark.anyio

USER = {"id": "u1", "roles": ["user"]}


async def _admin(client: AsyncClient) -> AsyncClient:
    return await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)


async def _refused(
    call: Callable[[], Awaitable[Any]], scope: str, field: str | None = None
) -> None:
    with pytest.raises(AuthorizationError) as caught:
        await call()
    assert caught.value.details["scope"] == scope
    if field is not None:
        assert caught.value.details["field"] == field


async def test_each_policy_scope_is_refused_to_those_without_it(server: RunningServer) -> None:
    kind = kind_name()
    doc = {"kind": kind, "id": "d"}
    async with AsyncClient(api_url=server.url, max_retries=0) as client:
        admin = await _admin(client)
        await admin.policies.put(resource_policy(kind, [allow(["view"], ["user"])]))
        name = unique("member")
        await client.auth.register(name, "member-password")
        member = await client.auth.sign_in_with_password(name, "member-password")
        for call, scope in [
            (lambda: member.policies.put(resource_policy(kind, [])), "policies:admin"),
            (lambda: member.policies.delete(key_of(kind)), "policies:admin"),
            (lambda: member.policies.set_globals({"x": 1}), "policies:admin"),
            (lambda: member.policies.list(), "policies:read"),
            (lambda: member.policies.get(key_of(kind)), "policies:read"),
            (lambda: member.policies.versions(key_of(kind)), "policies:read"),
            (
                lambda: member.policy.check_resources(resources=[doc], actions=["view"]),
                "policy:check",
            ),
            (lambda: member.policy.plan(None, kind, "view"), "policy:check"),
        ]:
            await _refused(call, scope)
        reader_key = await admin.api_keys.create(unique("reader"), ["policies:read"])
        reader = await client.auth.sign_in_with_token(reader_key["key"], "api_key")
        assert key_of(kind) in {p.key for p in (await reader.policies.list()).policies}
        await _refused(lambda: reader.policies.put(resource_policy(kind, [])), "policies:admin")
        await _refused(lambda: reader.policy.check_resources(USER, [doc], ["view"]), "policy:check")
        scopes = {s["name"] for s in await admin.scopes.list()}
        assert {"policies:admin", "policies:read", "policy:check"} <= scopes


async def test_checking_as_someone_else_needs_policies_read(server: RunningServer) -> None:
    kind = kind_name()
    doc = {"kind": kind, "id": "d"}
    entry = {"resource": doc, "actions": ["view"]}
    async with AsyncClient(api_url=server.url, max_retries=0) as client:
        admin = await _admin(client)
        await admin.policies.put(resource_policy(kind, [allow(["view"], ["admin"])]))
        checker_key = await admin.api_keys.create(unique("checker"), ["policy:check"])
        checker = await client.auth.sign_in_with_token(checker_key["key"], "api_key")
        # as itself (the admin, whose key it is, with the admin's roles): allowed
        assert await checker.policy.check_resources(resources=[doc], actions=["view"]) == {
            "d": {"view": True}
        }
        as_admin = {"id": "x", "roles": ["admin"]}
        claims = {"jwt": {"sub": "x", "groups": ["admins"]}}
        for call, field in [
            (lambda: checker.policy.check(as_admin, [entry]), "principal"),
            (lambda: checker.policy.check(resources=[entry], aux_data=claims), "aux_data"),
            (lambda: checker.policy.check_resources(as_admin, [doc], ["view"]), "principal"),
            (lambda: checker.policy.filter_allowed(as_admin, [doc], ["view"]), "principal"),
            (lambda: checker.policy.get_allowed_actions(as_admin, doc, ["view"]), "principal"),
            (lambda: checker.policy.plan(as_admin, kind, "view"), "principal"),
            (lambda: checker.policy.plan(None, kind, "view", aux_data=claims), "aux_data"),
        ]:
            await _refused(call, "policies:read", field)
        service_key = await admin.api_keys.create(unique("svc"), ["policy:check", "policies:read"])
        service = await client.auth.sign_in_with_token(service_key["key"], "api_key")
        assert await service.policy.check_resources(USER, [doc], ["view"]) == {"d": {"view": False}}


def _put_refusal(caught: pytest.ExceptionInfo[ValidationError]) -> str:
    error = caught.value
    assert error.status_code == 400
    assert error.details["field"] == "policies"
    return " ".join(issue["message"] for issue in error.details["issues"])


BILLION_LAUGHS = "\n".join(
    [
        "apiVersion: api.cerbos.dev/v1",
        "metadata:",
        '  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(
            f"  {name}: &{name} [{', '.join([f'*{prev}'] * 9)}]"
            for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
        ),
        "resourcePolicy: {resource: bomb, version: default, rules: []}",
    ]
)


async def test_bombs_and_oversized_policies_are_refused_naming_the_field(
    server: RunningServer,
) -> None:
    kind = kind_name()
    doubling = {"v0": "R.attr.a"} | {f"v{i}": f"V.v{i - 1} + V.v{i - 1}" for i in range(1, 40)}
    chain = {"v0": "R.attr.a"} | {f"v{i}": f"V.v{i - 1} + 1" for i in range(1, 200)}
    deep_yaml = "".join(" " * i + f"k{i}:\n" for i in range(100)) + " " * 100 + "v\n"
    async with AsyncClient(api_url=server.url, max_retries=0) as client:
        admin = await _admin(client)
        before = (await admin.policies.list()).revision
        with pytest.raises(ValidationError) as caught:
            await admin.policies.put(BILLION_LAUGHS)
        assert "aliases are expanded" in _put_refusal(caught)
        with pytest.raises(ValidationError) as caught:
            await admin.policies.put(deep_yaml)
        assert "nested deeper" in _put_refusal(caught)
        for variables, words in ((doubling, "more than"), (chain, "deep")):
            rule = allow(["view"], ["user"], f"V.v{len(variables) - 1} > 0")
            policy = resource_policy(kind, [rule], variables={"local": variables})
            with pytest.raises(ValidationError) as caught:
                await admin.policies.put(policy)
            assert words in _put_refusal(caught)
        huge = resource_policy(kind, [allow([f"a{i}" for i in range(50_000)], ["user"])])
        with pytest.raises(ValidationError) as caught:
            await admin.policies.put(huge)
        assert "KiB" in _put_refusal(caught)
        with pytest.raises(ValidationError) as caught:
            await admin.policies.put("x" * (1024 * 1024 + 1))
        assert caught.value.details["field"] == "policies[0]"
        with pytest.raises(ValidationError) as caught:
            await admin.policies.set_globals({"big": "x" * 70_000})
        assert caught.value.details["field"] == "globals"
        assert (await admin.policies.list()).revision == before  # nothing was stored


async def test_nul_characters_duplicate_keys_and_costly_conditions_are_4xx_never_500(
    server: RunningServer,
) -> None:
    """Found by the attacker's pass: a NUL escaped in policy YAML reached PostgreSQL (500),
    duplicate keys were read as the last one, and nested comprehensions over large attribute
    lists ran for seconds on the event loop."""
    kind = kind_name()
    head = f"apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: {kind}\n"
    nul = (
        head
        + '  version: default\n  rules: [{actions: [view], effect: EFFECT_ALLOW, roles: [user], name: "a\\0b"}]\n'
    )
    duplicate = head + "  version: default\n  version: v2\n  rules: []\n"
    costly = "R.attr.a.exists(x, R.attr.a.exists(y, x + y == 'never'))"
    async with AsyncClient(api_url=server.url, max_retries=0) as client:
        admin = await _admin(client)
        before = (await admin.policies.list()).revision
        with pytest.raises(ValidationError) as caught:
            await admin.policies.put(nul)
        assert "NUL" in _put_refusal(caught)
        assert caught.value.details["issues"][0]["path"] == "resourcePolicy.rules[0].name"
        with pytest.raises(ValidationError) as caught:  # as JSON: the wire refuses it
            await admin.policies.put(resource_policy(kind, [], metadata={"x": "\x00"}))
        assert caught.value.details["field"] == "policies[0].resourcePolicy.metadata.x"
        with pytest.raises(ValidationError) as caught:
            await admin.policies.put(duplicate)
        assert "duplicate key 'version' at line 5" in _put_refusal(caught)
        assert (await admin.policies.list()).revision == before  # nothing was stored
        await admin.policies.put(resource_policy(kind, [allow(["view"], ["user"], costly)]))
        small = {"kind": kind, "id": "a", "attr": {"a": ["1", "2"]}}
        large = {"kind": kind, "id": "b", "attr": {"a": [str(i) for i in range(3000)]}}
        assert await admin.policy.check_resources(USER, [small], ["view"]) == {"a": {"view": False}}
        with pytest.raises(ValidationError) as caught:
            await admin.policy.check_resources(USER, [small, large], ["view"])
        assert caught.value.status_code == 400
        assert caught.value.code == "policy_cost_exceeded"
        assert caught.value.details["field"] == "resources[1]"


async def test_oversized_and_malformed_checks_are_refused_naming_the_field(
    server: RunningServer,
) -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(40):
        node["x"] = {}
        node = node["x"]
    entry = {"resource": {"kind": "k", "id": "d"}, "actions": ["view"]}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"principal": USER, "resources": [entry] * 1001}, "resources"),
        (
            {"principal": USER, "resources": [{**entry, "actions": ["a"] * 101}]},
            "resources[0].actions",
        ),
        (
            {"principal": USER, "resources": [{**entry, "resource": {"kind": "k", "attr": deep}}]},
            "resources[0].resource.attr",
        ),
        ({"principal": {**USER, "id": "u\x00"}, "resources": [entry]}, "principal.id"),
        (
            {
                "principal": USER,
                "resources": [{**entry, "resource": {"kind": "k", "attr": {"n": 2**64}}}],
            },
            "resources[0].resource.attr.n",
        ),
        ({"principal": {**USER, "rolez": ["admin"]}, "resources": [entry]}, "principal"),
        ({"principal": {**USER, "roles": []}, "resources": [entry]}, "principal.roles"),
    ]
    async with AsyncClient(api_url=server.url, max_retries=0) as client:
        admin = await _admin(client)
        for params, field in cases:
            with pytest.raises(ValidationError) as caught:
                await admin.call("policy.check", params)
            assert caught.value.details["field"] == field, params
        with pytest.raises(ValidationError) as caught:
            await admin.policy.check_resources(USER, [{"kind": "k", "id": "a"}] * 2, ["view"])
        assert caught.value.details["field"] == "resources[1].id"


async def test_the_tenants_stamp_is_out_of_reach_of_its_kv_calls(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replicas trust the stamp to say whether their compiled policies are current: a tenant
    able to write it could put back an old one and keep a revoked policy in force."""
    store = platform_of(server).kv
    written: list[str] = []
    set_ = store.set

    async def watched(key: str, value: str, **options: Any) -> bool:
        written.append(key)
        return await set_(key, value, **options)

    monkeypatch.setattr(store, "set", watched)
    kind = kind_name()
    doc = {"kind": kind, "id": "d"}
    async with AsyncClient(api_url=server.url, max_retries=0) as client:
        admin = await _admin(client)
        await admin.policies.put(resource_policy(kind, [allow(["view"], ["user"])]))
        assert stamp_key("default") in written  # the change moved the stamp on
        changed = len(written)
        for key in (stamp_key("default"), f"default:{stamp_key('default')}"):
            assert not (await admin.kv.get(key)).found  # its keys are its own
            await admin.kv.set(key, "forged")
        assert stamp_key("default") not in written[changed:]
        assert await admin.policy.check_resources(USER, [doc], ["view"]) == {"d": {"view": True}}


def _suite(kind: str, principals: int = 1, resources: int = 1, attr: str = "{}") -> str:
    """A suite of one test: `principals` x `resources`, each viewed; every view expected."""
    who = "".join(f"  p{i}: {{id: p{i}, roles: [user]}}\n" for i in range(principals))
    what = "".join(f"  r{i}: {{kind: {kind}, id: r{i}, attr: {attr}}}\n" for i in range(resources))
    names = ", ".join(f"p{i}" for i in range(principals))
    return (
        f"name: s\nprincipals:\n{who}resources:\n{what}tests:\n  - name: t\n    input:\n"
        f"      principals: [{names}]\n      resources: [{', '.join(f'r{i}' for i in range(resources))}]\n"
        "      actions: [view]\n    expected:\n      - principal: p0\n        resource: r0\n"
        "        actions: {view: EFFECT_ALLOW}\n"
    )


async def _test_refusal(call: Awaitable[Any], field: str) -> str:
    with pytest.raises(ValidationError) as caught:
        await call
    assert (caught.value.status_code, caught.value.details["field"]) == (400, field)
    return caught.value.message


async def test_policy_tests_are_bounded_read_only_and_see_only_the_callers_tenant(
    server: RunningServer,
) -> None:
    """`policies.test`: readers only, bad or oversized text a 400 naming it, work bounded
    (cases, cost), nothing stored, and another tenant's policies never used."""
    kind = kind_name()
    costly = "R.attr.a.exists(x, R.attr.a.exists(y, x + y == 'never'))"
    async with AsyncClient(api_url=server.url, max_retries=0) as client:
        admin = await _admin(client)
        await admin.policies.put(resource_policy(kind, [allow(["view"], ["user"])]))
        before = (await admin.policies.list()).revision
        assert (await admin.policies.test(_suite(kind))).ok
        name = unique("member")
        await client.auth.register(name, "member-password")
        member = await client.auth.sign_in_with_password(name, "member-password")
        await _refused(lambda: member.policies.test(_suite(kind)), "policies:read")
        reader_key = await admin.api_keys.create(unique("reader"), ["policies:read"])
        reader = await client.auth.sign_in_with_token(reader_key["key"], "api_key")
        assert (await reader.policies.test(_suite(kind))).passed == 1

        for text, words in [
            (BILLION_LAUGHS, "aliases are expanded"),
            ("name: s\nname: t\n", "duplicate key 'name'"),
            ("name: s\ntests: [{name: t, input: {actions: [view]}, surprise: 1}]\n", "surprise"),
            ("name: a\n---\nname: b\n", "one YAML document"),
            ("x" * (256 * 1024 + 1), "length <= 262144"),
        ]:
            assert words in await _test_refusal(admin.policies.test(text), "suite")
        await _test_refusal(admin.policies.test("name: s\x00\n"), "suite")
        await _test_refusal(
            admin.policies.test(_suite(kind), {"principals": "principals: [not, a, map]"}),
            "testdata.principals",
        )
        await _test_refusal(admin.policies.test(_suite(kind), {"groups": "x: 1"}), "testdata")
        words = await _test_refusal(admin.policies.test(_suite(kind, 40, 30)), "suite")
        assert "more than 1000 cases" in words
        each_compiles = _suite(kind).replace(
            "  - name: t\n", "  - name: t\n    options: {globals: {n: N}}\n"
        )
        tests = each_compiles[each_compiles.index("  - name: t") :]
        four = each_compiles + "".join(tests.replace("N", str(n)) for n in range(1, 4))
        words = await _test_refusal(admin.policies.test(four.replace("N", "0")), "suite")
        assert "sets of globals" in words

        await admin.policies.put(resource_policy(kind, [allow(["view"], ["user"], costly)]))
        big = "{a: [" + ", ".join(f"'{i}'" for i in range(3000)) + "]}"
        over = await admin.policies.test(_suite(kind, attr=big))
        assert (over.cases, over.errors[0].where) == ([], "s / t")
        assert "cost" in over.errors[0].message
        assert (await admin.policies.list()).revision == before + 1  # only the put stored

        tenant = unique("pt")
        await admin.tenants.create(tenant, admin_username="root", admin_password="root-password")
        async with AsyncClient(api_url=server.url, tenant=tenant, max_retries=0) as other:
            root = await other.auth.sign_in_with_password("root", "root-password")
            elsewhere = await root.policies.test(_suite(kind))
            assert [(c.actual, c.passed) for c in elsewhere.cases] == [("EFFECT_DENY", False)]
            assert (await root.policies.list()).policies == []
        await admin.policies.delete(key_of(kind))


async def test_policy_tests_count_every_pair_checked_and_every_pair_expected(
    server: RunningServer,
) -> None:
    """(found by the attacker's pass) A test of no actions checked each of its principals x
    resources uncounted, and an expectation's principals x resources were gathered uncounted
    (groups of thousands from 256 KiB of testdata: hours of CPU and gigabytes for one call):
    each pair checked counts as a case, and the pairs and names expected are bounded alike."""
    kind = kind_name()
    async with AsyncClient(api_url=server.url, max_retries=0) as client:
        admin = await _admin(client)
        await admin.policies.put(resource_policy(kind, [allow(["view"], ["user"])]))
        suite = _suite(kind, 40, 30)
        no_actions = suite[: suite.index("      actions:")] + "      actions: []\n"
        words = await _test_refusal(admin.policies.test(no_actions), "suite")
        assert "more than 1000 cases" in words

        one_case = _suite(kind, 40, 30).replace(
            "      principals: [" + ", ".join(f"p{i}" for i in range(40)) + "]",
            "      principals: [p0]",
        )
        one_case = one_case.replace(
            "      resources: [" + ", ".join(f"r{i}" for i in range(30)) + "]",
            "      resources: [r0]",
        )
        assert (await admin.policies.test(one_case)).passed == 1
        every_pair = one_case.replace(
            "      - principal: p0\n        resource: r0\n",
            "      - principals: [" + ", ".join(f"p{i}" for i in range(40)) + "]\n"
            "        resources: [" + ", ".join(f"r{i}" for i in range(30)) + "]\n",
        )
        words = await _test_refusal(admin.policies.test(every_pair), "suite")
        assert "more than 1000 (principal, resource) pairs" in words
        everyone = ", ".join(f"p{i}" for i in range(40))
        grouped = one_case.replace(
            "name: s\n", f"name: s\nprincipalGroups:\n  all: {{principals: [{everyone}]}}\n"
        )
        again = "      - principalGroups: [all, all]\n        actions: {}\n" * 260
        words = await _test_refusal(
            admin.policies.test(grouped.replace("    expected:\n", "    expected:\n" + again)),
            "suite",
        )
        assert "name more than 10000 principals and resources" in words
        await admin.policies.delete(key_of(kind))
