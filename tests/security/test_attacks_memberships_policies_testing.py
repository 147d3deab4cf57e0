"""An attacker's pass over what landed on one day: memberships across tenants, passkeys and
anonymous users, `/docs`, and the `roost.testing` plugin, against real servers. Each test is
a probe: it names what an attacker tries, and asserts the refusal (or the invariant)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from roost import AsyncClient, ValidationError
from roost.testing import start_roost_server
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique
from tests.policy_documents import allow, key_of, kind_name, resource_policy

pytestmark = pytest.mark.anyio
PASSWORD = "a-long-password"


class Api:
    """Calls by operation name over plain HTTP, as `tenant`'s signed-in user (or nobody)."""

    def __init__(self, http: httpx.AsyncClient, tenant: str, token: str = "") -> None:
        self.http, self.tenant, self.token = http, tenant, token

    async def post(self, operation: str, params: Any) -> httpx.Response:
        headers = {"X-Roost-Tenant": self.tenant}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        module, _, action = operation.partition(".")
        return await self.http.post(f"/api/v1/{module}/{action}", json=params, headers=headers)

    async def ok(self, operation: str, params: Any) -> Any:
        response = await self.post(operation, params)
        assert response.status_code == 200, response.text
        return response.json()

    async def as_user(self, username: str) -> Api:
        tokens = await self.ok("auth.login", {"username": username, "password": PASSWORD})
        return Api(self.http, self.tenant, tokens["access"])


async def _platform(http: httpx.AsyncClient) -> Api:
    login = {"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}
    tokens = await Api(http, "default").ok("auth.login", login)
    return Api(http, "default", tokens["access"])


async def _tenant(http: httpx.AsyncClient, platform: Api) -> Api:
    """A new tenant, as its superuser `root`."""
    name = unique("a3")
    await platform.ok(
        "tenants.create", {"name": name, "admin_username": "root", "admin_password": PASSWORD}
    )
    return await Api(http, name).as_user("root")


# -- memberships ------------------------------------------------------------------------------


async def test_a_switch_racing_a_removal_leaves_no_session_behind(server: RunningServer) -> None:
    """The member tenant's admin removes the membership while the person switches in: once
    both are done, the person must hold no working session there (a switch that read the
    link before the removal, and opened its session after the removal signed the account
    out, kept a session of a membership that no longer exists)."""
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        platform = await _platform(http)
        home, there = await _tenant(http, platform), await _tenant(http, platform)
        await home.ok("users.create_user", {"username": "ann", "password": PASSWORD})
        ann = await Api(http, home.tenant).as_user("ann")
        survived = []
        for round_ in range(4):
            account = f"acc{round_}"
            await there.ok("users.create_user", {"username": account, "password": PASSWORD})
            code = (await there.ok("users.invite_member", {"username": account}))["code"]
            await ann.ok("auth.accept_invitation", {"code": code})
            switched, removed = await asyncio.gather(
                ann.post("auth.switch_tenant", {"tenant": there.tenant}),
                there.post("users.remove_membership", {"username": account}),
            )
            assert removed.status_code == 200, removed.text
            if switched.status_code != 200:
                assert switched.json()["error"]["code"] == "not_a_member", switched.text
                continue
            member = Api(http, there.tenant, switched.json()["access"])
            if (await member.post("auth.me", {})).status_code != 401:
                survived.append(round_)
        assert not survived, f"a removed membership kept its session in rounds {survived}"


async def test_another_tenants_reader_learns_no_names_or_roles_of_elsewhere(
    server: RunningServer,
) -> None:
    """A `users:read` holder of the member tenant lists the person's tenants: it sees this
    tenant's account, and elsewhere only the tenant names (no usernames, no roles); a user
    without `users:read` lists nobody else; an unknown username is a 404, not a 500."""
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        platform = await _platform(http)
        home, there = await _tenant(http, platform), await _tenant(http, platform)
        await home.ok("users.create_user", {"username": "ann", "password": PASSWORD})
        ann = await Api(http, home.tenant).as_user("ann")
        for name in ("acc", "nosy"):
            await there.ok("users.create_user", {"username": name, "password": PASSWORD})
        code = (await there.ok("users.invite_member", {"username": "acc"}))["code"]
        await ann.ok("auth.accept_invitation", {"code": code})

        listed = await there.ok("users.memberships", {"username": "acc"})
        elsewhere = [entry for entry in listed if entry["tenant"] != there.tenant]
        assert [entry["tenant"] for entry in elsewhere] == [home.tenant]
        assert all("username" not in e and "roles" not in e for e in elsewhere), listed

        nosy = await Api(http, there.tenant).as_user("nosy")
        refused = await nosy.post("users.memberships", {"username": "acc"})
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "missing_scope")
        missing = await there.post("users.memberships", {"username": "nobody-here"})
        assert missing.status_code == 404, missing.text

        # a switched-in member account is no home: it switches nowhere, not even back
        switched = await ann.ok("auth.switch_tenant", {"tenant": there.tenant})
        member = Api(http, there.tenant, switched["access"])
        back = await member.post("auth.switch_tenant", {"tenant": home.tenant})
        assert (back.status_code, back.json()["error"]["code"]) == (403, "not_a_member")
        # nor can it take an invitation to make itself a home
        await home.ok("users.create_user", {"username": "bob", "password": PASSWORD})
        other = (await home.ok("users.invite_member", {"username": "bob"}))["code"]
        taken = await member.post("auth.accept_invitation", {"code": other})
        assert taken.status_code == 409, taken.text


async def test_an_anonymous_user_given_everything_invites_and_lists_nobody(
    server: RunningServer,
) -> None:
    """A tenant gave its `anonymous` role `*` and `users:write` by mistake: an anonymous user
    (anyone) still cannot offer the tenant's accounts, list others' tenants, or make itself
    an API key."""
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        platform = await _platform(http)
        tenant = await _tenant(http, platform)
        await tenant.ok("settings.update", {"settings": {"auth_anonymous_sign_in": True}})
        await tenant.ok(
            "roles.update",
            {"name": "anonymous", "scopes": ["*", "users:write", "users:read", "api_keys:write"]},
        )
        guest_tokens = await Api(http, tenant.tenant).ok("auth.sign_in_anonymously", {})
        guest = Api(http, tenant.tenant, guest_tokens["access"])
        invite = await guest.post("users.invite_member", {"username": "root"})
        assert invite.status_code == 403, invite.text
        listing = await guest.post("users.memberships", {"username": "root"})
        assert listing.status_code == 403, listing.text
        key = await guest.post("api_keys.create", {"name": "mine"})
        assert key.status_code in (403, 409), key.text


# -- hostile bodies -------------------------------------------------------------------------


async def test_deeply_nested_or_huge_credentials_are_a_400(server: RunningServer) -> None:
    """Passkey credentials are free-form objects: nesting them deep, or sending a body of
    megabytes, is refused as bad input (never a 500, never a stack overflow)."""
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        nobody = Api(http, "default")
        deep = "[" * 100_000 + "]" * 100_000
        body = '{"credential": {"id": ' + deep + "}}"
        answer = await http.post(
            "/api/v1/auth/sign_in_with_passkey",
            content=body.encode(),
            headers={"Content-Type": "application/json", "X-Roost-Tenant": "default"},
        )
        assert 400 <= answer.status_code < 500, answer.text[:300]
        huge = {"credential": {"id": "x" * (20 * 1024 * 1024)}}
        answer = await nobody.post("auth.sign_in_with_passkey", huge)
        assert answer.status_code in (400, 413), answer.text[:300]


# -- /docs ----------------------------------------------------------------------------------


async def test_docs_static_files_stay_in_their_folder(server: RunningServer) -> None:
    """`/docs/static` serves Swagger UI's files only: no traversal out of the package folder,
    encoded or not, and nothing of the server's own."""
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        fine = await http.get("/docs/static/swagger-ui.css")
        assert fine.status_code == 200
        for path in (
            "/docs/static/../__init__.py",
            "/docs/static/%2e%2e/__init__.py",
            "/docs/static/..%2f__init__.py",
            "/docs/static/%2e%2e%2f%2e%2e%2fserver%2fapp.py",
            "/docs/static/....//__init__.py",
            "/docs/static/%00",
        ):
            answer = await http.get(path)
            assert answer.status_code in (400, 404), (path, answer.status_code)
            assert "import" not in answer.text, path
        page = await http.get("/docs/operations")
        assert page.headers["content-type"].startswith("text/html")
        assert "<script" not in page.text.lower()


# -- the roost.testing plugin -------------------------------------------------------------


def test_the_plugins_server_keeps_off_the_developers_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A project's `.env` (or environment) names its real database; its test suite's
    `roost_server` must not migrate, seed or write that database: the plugin promises SQLite
    in a temporary data dir."""
    real = tmp_path / "real.db"
    (tmp_path / ".env").write_text(f"ROOST_DATABASE_URL=sqlite+aiosqlite:///{real}\n")
    monkeypatch.chdir(tmp_path)
    running = start_roost_server(tmp_path / "data")
    try:
        assert not real.exists(), "the test server opened the database .env names"
        assert (tmp_path / "data" / "roost.db").exists()
    finally:
        running.stop()


# -- policies -------------------------------------------------------------------------------


def _alias_tower(levels: int = 30, depth: int = 55) -> str:
    """A policy whose text is never 60 levels deep, but whose anchors nest one in the next:
    `levels * depth` levels once built."""
    lines = [
        "apiVersion: api.cerbos.dev/v1",
        "resourcePolicy: {resource: a3doc, version: default, rules: []}",
        "metadata:",
        "  annotations:",
        "    tower:",
    ]
    for k in range(levels):
        inner = f"*a{k - 1}" if k else "1"
        lines.append(f"      a{k}: &a{k} " + "[" * depth + inner + "]" * depth)
    return "\n".join(lines) + "\n"


async def test_policy_yaml_nested_through_its_aliases_is_a_400(server: RunningServer) -> None:
    """The YAML guard counts an alias as the nodes it repeats, but not as the levels: anchors
    nested one in the next build 1650 levels from text 56 deep, and storing the policy then
    overflowed the stack (a 500). Refused as too deep, naming the policy."""
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        admin = await _platform(http)
        answer = await admin.post("policies.put", {"policies": [_alias_tower()]})
        assert answer.status_code == 400, answer.text[:300]
        assert "deeper than" in answer.json()["error"]["message"]
        fine = await admin.post("policies.put", {"policies": [_alias_tower(levels=1, depth=5)]})
        assert fine.status_code == 200, fine.text[:300]
        await admin.ok("policies.delete", {"keys": ["resource.a3doc.vdefault"]})


async def test_an_account_is_never_both_a_member_account_and_a_home(server: RunningServer) -> None:
    """Two acceptances at once: a person takes tenant B's account `acc` as a membership while
    `acc` itself (signed in at B) takes tenant C's account as a home. Both succeeding chains
    A -> B -> C: `acc`'s session, which B's admins can obtain by resetting its password,
    would then switch into C. One of the two must be refused."""
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        platform = await _platform(http)
        home = await _tenant(http, platform)
        there, third = await _tenant(http, platform), await _tenant(http, platform)
        await home.ok("users.create_user", {"username": "ann", "password": PASSWORD})
        ann = await Api(http, home.tenant).as_user("ann")
        chained = []
        for round_ in range(4):
            acc, cee = f"acc{round_}", f"cee{round_}"
            await there.ok("users.create_user", {"username": acc, "password": PASSWORD})
            await third.ok("users.create_user", {"username": cee, "password": PASSWORD})
            to_acc = (await there.ok("users.invite_member", {"username": acc}))["code"]
            to_cee = (await third.ok("users.invite_member", {"username": cee}))["code"]
            account = await Api(http, there.tenant).as_user(acc)
            first, second = await asyncio.gather(
                ann.post("auth.accept_invitation", {"code": to_acc}),
                account.post("auth.accept_invitation", {"code": to_cee}),
            )
            if first.status_code == second.status_code == 200:
                chained.append(round_)
            # ann keeps at most one account per tenant: free B for the next round
            await home.ok("users.remove_membership", {"username": "ann"})
        assert not chained, f"an account became member and home at once in rounds {chained}"


async def test_a_condition_that_grows_a_string_is_held_to_the_cost_budget(
    server: RunningServer,
) -> None:
    """The cost budget estimated only conditions with a comprehension or a set function;
    `replace` with an empty pattern writes the replacement between every character: its
    answer is |text| x |new|, so 100 KB of request data becomes 10 GB inside one check. Over
    the budget it must be refused (400 policy_cost_exceeded) before it is evaluated."""
    kind = kind_name()
    grows = 'size(R.attr.s.replace("", R.attr.s)) > 0'
    async with AsyncClient(api_url=server.url, max_retries=0) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        await admin.policies.put(resource_policy(kind, [allow(["view"], ["user"], grows)]))
        try:
            user = {"id": "u1", "roles": ["user"]}
            small = {"kind": kind, "id": "a", "attr": {"s": "ab"}}
            large = {"kind": kind, "id": "b", "attr": {"s": "x" * 3000}}  # 9 MB once grown
            assert await admin.policy.check_resources(user, [small], ["view"]) == {
                "a": {"view": True}
            }
            with pytest.raises(ValidationError) as caught:
                await admin.policy.check_resources(user, [large], ["view"])
            assert caught.value.code == "policy_cost_exceeded"
        finally:
            await admin.policies.delete(key_of(kind))
