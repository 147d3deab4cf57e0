"""One person across tenants, attacked over plain HTTP on SQLite and PostgreSQL: redeeming an
invitation twice at once, after it expired, with hostile input, and what the logs keep. (The
SDK tests, tests/client/_async/test_memberships.py, pin who may invite, accept and switch.)"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique

pytestmark = pytest.mark.anyio
PASSWORD = "a-long-password"


class Api:
    """Calls by operation name, as `tenant`'s `user` (or anonymously)."""

    def __init__(self, http: httpx.AsyncClient, tenant: str, token: str = "") -> None:
        self.http, self.tenant, self.token = http, tenant, token

    async def post(self, operation: str, params: dict[str, Any]) -> httpx.Response:
        headers = {"X-Roost-Tenant": self.tenant}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        module, _, action = operation.partition(".")
        return await self.http.post(f"/api/v1/{module}/{action}", json=params, headers=headers)

    async def ok(self, operation: str, params: dict[str, Any]) -> Any:
        response = await self.post(operation, params)
        assert response.status_code == 200, response.text
        return response.json()

    async def as_user(self, username: str) -> Api:
        login = {"username": username, "password": PASSWORD}
        tokens = await self.ok("auth.login", login)
        return Api(self.http, self.tenant, tokens["access"])


async def _tenant(http: httpx.AsyncClient, platform: Api) -> Api:
    """A new tenant, as its superuser `root`."""
    name = unique("m")
    await platform.ok(
        "tenants.create", {"name": name, "admin_username": "root", "admin_password": PASSWORD}
    )
    return await Api(http, name).as_user("root")


async def test_an_invitation_is_spent_once_expires_and_refuses_hostile_input(
    clocked_server: RunningServer,
) -> None:
    async with httpx.AsyncClient(base_url=clocked_server.url, timeout=60) as http:
        tokens = await Api(http, "default").ok(
            "auth.login", {"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}
        )
        platform = Api(http, "default", tokens["access"])
        home, there = await _tenant(http, platform), await _tenant(http, platform)
        for name in ("ann", "ben"):
            await home.ok("users.create_user", {"username": name, "password": PASSWORD})
        ann = await Api(http, home.tenant).as_user("ann")
        ben = await Api(http, home.tenant).as_user("ben")
        await there.ok("users.create_user", {"username": "acc", "password": PASSWORD})
        code = (await there.ok("users.invite_member", {"username": "acc"}))["code"]

        # two people redeem one code at the same moment: one gets the account
        answers = await asyncio.gather(
            ann.post("auth.accept_invitation", {"code": code}),
            ben.post("auth.accept_invitation", {"code": code}),
        )
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses[0] == 200, [a.text for a in answers]
        assert statuses[1] in (400, 409), [a.text for a in answers]
        winner = ann if answers[0].status_code == 200 else ben
        loser = ben if winner is ann else ann
        switched = await winner.ok("auth.switch_tenant", {"tenant": there.tenant})
        assert "access" in switched
        refused = await loser.post("auth.switch_tenant", {"tenant": there.tenant})
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "not_a_member")

        # an invitation past its time is refused
        await there.ok("users.create_user", {"username": "acc2", "password": PASSWORD})
        late = await there.ok("users.invite_member", {"username": "acc2", "expires_in": 60})
        clocked_server.clock.advance(61)
        expired = await loser.post("auth.accept_invitation", {"code": late["code"]})
        assert expired.status_code == 400
        assert "expired" in expired.json()["error"]["message"]

        # hostile input: a clear 4xx naming the field, never a 5xx
        for params in (
            {"username": "acc2", "expires_in": 2**64},
            {"username": "acc2", "expires_in": 59},
            {"username": "acc2\x00"},
            {"username": "acc2", "extra": 1},
        ):
            answer = await there.post("users.invite_member", params)
            assert answer.status_code == 400, (params, answer.text)
        bad_codes: list[object] = ["x" * 5000, "rmi_" + "\x00" * 20, {"nested": [[[]]]}, None]
        for code_sent in bad_codes:
            answer = await loser.post("auth.accept_invitation", {"code": code_sent})
            assert answer.status_code == 400, (code_sent, answer.text)
            assert answer.json()["error"]["details"].get("field") == "code"
        for tenant in ("X" * 100, "default\x00", "", 2**64):
            answer = await winner.post("auth.switch_tenant", {"tenant": tenant})
            assert answer.status_code == 400, (tenant, answer.text)

        # anonymous callers reach none of it
        for operation in ("auth.accept_invitation", "auth.switch_tenant", "users.memberships"):
            answer = await Api(http, home.tenant).post(operation, {})
            assert answer.status_code == 401

        # the audit entries name the accounts, never the code
        logs = await there.ok("logs.query", {"category": "auth.audit", "limit": 100})
        text = json.dumps(logs)
        events = {entry["data"]["event"] for entry in logs["entries"]}
        assert {"membership_offered", "membership_accepted", "tenant_switched_in"} <= events
        assert code not in text
        assert late["code"] not in text
        assert code.split("_", 3)[3] not in text  # its secret part (which may hold "_")
