"""The dashboard's tenant switch (`POST /_/session/switch`), attacked over HTTP on SQLite and
PostgreSQL. It trades the cookie's session for one of the person's member account in another
tenant (`auth.switch_tenant`), so it must ask no less than that operation does:

- the cookie counts only with its CSRF header (another site cannot make a browser switch);
- only a tenant where the home account holds a membership, and only from the home account
  (a member account's session, which that tenant's admins could obtain, switches nowhere);
- the session it came from is signed out: a copy of the old cookie is dead;
- bad bodies are 4xx naming the field, never a 500, and the cookies stay as they were.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from roost import AsyncClient
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique

pytestmark = pytest.mark.anyio

PASSWORD = "a-long-password"


@asynccontextmanager
async def _browser(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        yield http


async def _sign_in(http: httpx.AsyncClient, username: str, password: str, tenant: str) -> str:
    answer = await http.post(
        "/_/session",
        json={"tenant": tenant, "username": username, "password": password},
        headers={"X-Roost-CSRF": "signin"},
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["csrf"])


async def _people(
    server: RunningServer, there_requires_two_factor: bool = False
) -> tuple[str, str, str, str]:
    """A home tenant with `alice`, another tenant where her account `alice-there` accepted
    her as a member, and a third tenant where she is nobody: (home, there, third, alice)."""
    home, there, third, alice = unique("home"), unique("there"), unique("third"), unique("alice")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        for name in (home, there, third):
            await admin.tenants.create(name, admin_username="root", admin_password=PASSWORD)
        root_home = await client._in_tenant(home).auth.sign_in_with_password("root", PASSWORD)
        await root_home.users.create_user(alice, PASSWORD)
        root_there = await client._in_tenant(there).auth.sign_in_with_password("root", PASSWORD)
        await root_there.users.create_user("alice-there", PASSWORD)
        invitation = await root_there.users.invite_member("alice-there")
        me = await client._in_tenant(home).auth.sign_in_with_password(alice, PASSWORD)
        await me.auth.accept_invitation(invitation["code"])
        if there_requires_two_factor:
            await root_there.settings.update({"auth_two_factor_roles": ["member"]})
    return home, there, third, alice


async def test_switching_trades_the_session_and_signs_the_old_one_out(
    server: RunningServer,
) -> None:
    home, there, third, alice = await _people(server)
    async with _browser(server) as http:
        csrf = await _sign_in(http, alice, PASSWORD, home)
        copied = dict(http.cookies)
        switched = await http.post(
            "/_/session/switch", json={"tenant": there}, headers={"X-Roost-CSRF": csrf}
        )
        assert switched.status_code == 200, switched.text
        assert switched.headers["cache-control"] == "no-store"
        assert "rst_" not in switched.text  # the token is only in the httpOnly cookie
        new_csrf = switched.json()["csrf"]
        assert switched.json()["tenant"] == there
        me = await http.post("/api/v1/auth/whoami", headers={"X-Roost-CSRF": new_csrf})
        assert (me.json()["tenant"], me.json()["username"]) == (there, "alice-there")
        # the member account's session switches nowhere, not even home
        for target in (home, third):
            refused = await http.post(
                "/_/session/switch", json={"tenant": target}, headers={"X-Roost-CSRF": new_csrf}
            )
            assert refused.status_code == 403, refused.text
            assert refused.json()["error"]["code"] == "not_a_member"
        still = await http.post("/api/v1/auth/whoami", headers={"X-Roost-CSRF": new_csrf})
        assert still.json()["tenant"] == there
    async with httpx.AsyncClient(base_url=server.url, cookies=copied) as replay:
        dead = await replay.post("/api/v1/auth/whoami", headers={"X-Roost-CSRF": csrf})
        assert dead.status_code == 401


async def test_no_switch_without_a_membership_the_csrf_header_or_a_session(
    server: RunningServer,
) -> None:
    home, there, third, alice = await _people(server)
    async with _browser(server) as http:
        anonymous = await http.post(
            "/_/session/switch", json={"tenant": there}, headers={"X-Roost-CSRF": "x"}
        )
        assert anonymous.status_code == 401
        # a token of the API is no dashboard session: it gets no cookie here
        tokens = await http.post(
            "/api/v1/auth/login",
            json={"username": alice, "password": PASSWORD},
            headers={"X-Roost-Tenant": home},
        )
        bearer = await http.post(
            "/_/session/switch",
            json={"tenant": there},
            headers={"X-Roost-CSRF": "x", "Authorization": f"Bearer {tokens.json()['access']}"},
        )
        assert bearer.status_code == 401
        assert "roost_dashboard" not in http.cookies
        csrf = await _sign_in(http, alice, PASSWORD, home)
        cookies = dict(http.cookies)
        # another site's form: the cookie comes, the header cannot
        forged = await http.post(
            "/_/session/switch",
            content=f"tenant={there}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert forged.status_code == 403
        assert forged.json()["error"]["code"] == "csrf_refused"
        wrong = await http.post(
            "/_/session/switch", json={"tenant": there}, headers={"X-Roost-CSRF": "0" * 64}
        )
        assert wrong.status_code == 403
        assert wrong.json()["error"]["code"] == "csrf_refused"
        for tenant in (third, "default", home):  # nobody there, or where she is already
            refused = await http.post(
                "/_/session/switch", json={"tenant": tenant}, headers={"X-Roost-CSRF": csrf}
            )
            assert refused.status_code in (400, 403), refused.text
            assert refused.json()["error"]["details"]["field"] == "tenant"
        assert dict(http.cookies) == cookies  # nothing changed
        me = await http.post("/api/v1/auth/whoami", headers={"X-Roost-CSRF": csrf})
        assert (me.json()["tenant"], me.json()["username"]) == (home, alice)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tenant": "Not A Tenant"}, "tenant"),
        ({"tenant": "a\x00b"}, "tenant"),
        ({"tenant": 2**64}, "tenant"),
        ({}, "tenant"),
        ({"tenant": "x", "session_token": False}, "session_token"),
    ],
)
async def test_a_bad_switch_is_a_4xx_naming_the_field(
    server: RunningServer, body: dict[str, Any], field: str
) -> None:
    async with _browser(server) as http:
        csrf = await _sign_in(http, ADMIN_USERNAME, ADMIN_PASSWORD, "default")
        answer = await http.post("/_/session/switch", json=body, headers={"X-Roost-CSRF": csrf})
        assert answer.status_code == 400, answer.text
        assert field in json.dumps(answer.json()["error"])
        huge = await http.post(
            "/_/session/switch", content=b"{" + b" " * 100_000, headers={"X-Roost-CSRF": csrf}
        )
        assert huge.status_code in (400, 413)
        deep = await http.post(
            "/_/session/switch", content=b"[" * 10_000, headers={"X-Roost-CSRF": csrf}
        )
        assert deep.status_code == 400


async def test_a_second_factor_the_other_tenant_requires_is_not_skipped(
    server: RunningServer,
) -> None:
    """The switch asks what auth.switch_tenant asks: the page then signs in there with its own
    form (which asks for the code); this session and its cookies stay as they were."""
    home, there, _, alice = await _people(server, there_requires_two_factor=True)
    async with _browser(server) as http:
        csrf = await _sign_in(http, alice, PASSWORD, home)
        cookies = dict(http.cookies)
        refused = await http.post(
            "/_/session/switch", json={"tenant": there}, headers={"X-Roost-CSRF": csrf}
        )
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"]["code"] == "second_factor_required"
        assert "set-cookie" not in refused.headers
        assert dict(http.cookies) == cookies
        me = await http.post("/api/v1/auth/whoami", headers={"X-Roost-CSRF": csrf})
        assert (me.json()["tenant"], me.json()["username"]) == (home, alice)
