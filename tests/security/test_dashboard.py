"""The dashboard's cookie sign-in, attacked over HTTP and the WebSocket.

- The session cookie is httpOnly and SameSite=Strict (Secure when the server is reached over
  https); the CSRF token's cookie is readable by the page and by nothing else.
- A cookie alone authenticates nothing: without the X-Roost-CSRF header a request is
  anonymous; a header that does not match the cookie (forged, or of another session) is
  refused. Signing in needs the header too, so another site cannot sign a browser in to an
  account of its choosing.
- A dashboard session of tenant A reads nothing of tenant B; a principal without scopes is
  refused everything that needs one; signing out ends the session on the server, so a cookie
  copied before is dead.
- Bad sign-in bodies are 4xx naming the field; the page's files come with a CSP that forbids
  framing and foreign scripts, and nothing outside the package is served.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from roost import AsyncClient
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique
from tests.factors import code_at, next_step

pytestmark = pytest.mark.anyio

SIGNIN = {"X-Roost-CSRF": "signin"}


@asynccontextmanager
async def _browser(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client that keeps cookies, as a browser does."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        yield http


async def _sign_in(
    http: httpx.AsyncClient, username: str, password: str, tenant: str = "default"
) -> str:
    answer = await http.post(
        "/_/session",
        json={"tenant": tenant, "username": username, "password": password},
        headers=SIGNIN,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["csrf"])


def _cookie_attributes(response: httpx.Response) -> dict[str, set[str]]:
    found = {}
    for line in response.headers.get_list("set-cookie"):
        name = line.split("=", 1)[0]
        found[name] = {part.strip().lower() for part in line.split(";")[1:]}
    return found


async def test_the_session_cookie_is_http_only_and_strict(server: RunningServer) -> None:
    async with _browser(server) as http:
        answer = await http.post(
            "/_/session",
            json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD},
            headers=SIGNIN,
        )
    attributes = _cookie_attributes(answer)
    assert {"httponly", "samesite=strict", "path=/"} <= attributes["roost_dashboard"]
    assert "secure" not in attributes["roost_dashboard"]  # plain http: a browser would drop it
    assert "samesite=strict" in attributes["roost_dashboard_csrf"]
    assert "httponly" not in attributes["roost_dashboard_csrf"]  # the page reads it
    assert answer.headers["cache-control"] == "no-store"
    assert "rst_" not in answer.text  # the session token is only in the httpOnly cookie


async def test_the_cookie_is_secure_when_the_public_url_is_https(make_server: Any) -> None:
    running = make_server(public_url="https://roost.example.com")
    async with _browser(running) as http:
        answer = await http.post(
            "/_/session",
            json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD},
            headers=SIGNIN,
        )
    attributes = _cookie_attributes(answer)
    assert "secure" in attributes["roost_dashboard"]
    assert "secure" in attributes["roost_dashboard_csrf"]


async def test_a_second_factor_account_signs_in_with_the_challenge_and_a_code(
    clocked_server: RunningServer,
) -> None:
    name = unique("twofa")
    async with AsyncClient(api_url=clocked_server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        await admin.users.create_user(name, "twofa-password-1")
        user = await client.auth.sign_in_with_password(name, "twofa-password-1")
        secret = (await user.auth.totp_enrol())["secret"]
        await user.auth.totp_confirm(code_at(clocked_server, secret))
    next_step(clocked_server)
    async with _browser(clocked_server) as http:
        first = await http.post(
            "/_/session", json={"username": name, "password": "twofa-password-1"}, headers=SIGNIN
        )
        assert first.status_code == 401
        error = first.json()["error"]
        assert error["code"] == "second_factor_required"
        assert "roost_dashboard" not in http.cookies  # the password alone opens nothing
        challenge = error["details"]["challenge"]
        wrong = await http.post(
            "/_/session", json={"challenge": challenge, "code": "000000"}, headers=SIGNIN
        )
        assert wrong.status_code == 401
        assert "roost_dashboard" not in http.cookies
        right = await http.post(
            "/_/session",
            json={"challenge": challenge, "code": code_at(clocked_server, secret)},
            headers=SIGNIN,
        )
        assert right.status_code == 200, right.text
        me = await http.post("/api/v1/auth/whoami", headers={"X-Roost-CSRF": right.json()["csrf"]})
        assert me.json()["username"] == name


async def test_a_cookie_without_the_csrf_header_authenticates_nothing(
    server: RunningServer,
) -> None:
    async with _browser(server) as http:
        csrf = await _sign_in(http, ADMIN_USERNAME, ADMIN_PASSWORD)
        assert (await http.post("/api/v1/auth/whoami", headers={"X-Roost-CSRF": csrf})).is_success
        # what a form or an <img> of another site makes the browser send: the cookie only
        anonymous = await http.post("/api/v1/database/tables")
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["code"] == "not_authenticated"
        for forged in ("signin", "0" * 64, csrf[:-1] + ("0" if csrf[-1] != "0" else "1"), ""):
            refused = await http.post(
                "/api/v1/kv/set", json={"key": "k", "value": 1}, headers={"X-Roost-CSRF": forged}
            )
            assert refused.status_code in (401, 403), forged
            if forged:
                assert refused.json()["error"]["code"] == "csrf_refused"
        # the file door too
        upload = await http.put("/api/v1/storage/buckets/b/objects/x", content=b"x")
        assert upload.status_code == 401


async def test_the_csrf_token_of_one_session_does_not_pass_for_another(
    server: RunningServer,
) -> None:
    async with _browser(server) as mine, _browser(server) as theirs:
        await _sign_in(mine, ADMIN_USERNAME, ADMIN_PASSWORD)
        their_csrf = await _sign_in(theirs, ADMIN_USERNAME, ADMIN_PASSWORD)
        refused = await mine.post("/api/v1/auth/whoami", headers={"X-Roost-CSRF": their_csrf})
        assert refused.status_code == 403
        assert refused.json()["error"]["details"]["field"] == "X-Roost-CSRF"


async def test_signing_in_needs_the_csrf_header(server: RunningServer) -> None:
    async with _browser(server) as http:
        # a cross-site form post: no custom header, and a form's content type
        answer = await http.post(
            "/_/session",
            content=f"username={ADMIN_USERNAME}&password={ADMIN_PASSWORD}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert answer.status_code == 403
        assert "roost_dashboard" not in http.cookies
        # and signing out too
        assert (await http.delete("/_/session")).status_code == 403


async def test_a_dashboard_session_reads_no_other_tenant(server: RunningServer) -> None:
    tenant = unique("dash")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        await admin.tenants.create(tenant, admin_username="root", admin_password="root-password-1")
    async with _browser(server) as http:
        csrf = await _sign_in(http, ADMIN_USERNAME, ADMIN_PASSWORD)
        other = await http.post(
            "/api/v1/database/tables", headers={"X-Roost-CSRF": csrf, "X-Roost-Tenant": tenant}
        )
        assert other.status_code == 401
        assert other.json()["error"]["code"] == "wrong_tenant"
        # the default tenant's admin is no user of the other tenant
        refused = await http.post(
            "/_/session",
            json={"tenant": tenant, "username": ADMIN_USERNAME, "password": ADMIN_PASSWORD},
            headers=SIGNIN,
        )
        assert refused.status_code == 401
    async with _browser(server) as http:
        csrf = await _sign_in(http, "root", "root-password-1", tenant=tenant)
        me = (await http.post("/api/v1/auth/whoami", headers={"X-Roost-CSRF": csrf})).json()
        assert me["tenant"] == tenant
        home = await http.post(
            "/api/v1/auth/whoami", headers={"X-Roost-CSRF": csrf, "X-Roost-Tenant": "default"}
        )
        assert home.status_code == 401


async def test_a_principal_without_scopes_is_refused_everything(server: RunningServer) -> None:
    username = unique("bare")
    async with AsyncClient(api_url=server.url) as client:
        admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
        await admin.users.create_user(username, "bare-password-1")
        await admin.users.revoke_roles(["member"], [username])
    async with _browser(server) as http:
        csrf = await _sign_in(http, username, "bare-password-1")
        headers = {"X-Roost-CSRF": csrf}
        me = (await http.post("/api/v1/auth/whoami", headers=headers)).json()
        assert me["scopes"] == []
        for operation in (
            "database/tables",
            "users/list_users",
            "roles/list",
            "api_keys/list",
            "storage/list_buckets",
            "logs/query",
            "secrets/list",
            "kv/scan",
        ):
            answer = await http.post(f"/api/v1/{operation}", json={}, headers=headers)
            assert answer.status_code == 403, operation
            assert answer.json()["error"]["code"] == "missing_scope"


async def test_signing_out_ends_the_session_for_a_copied_cookie(server: RunningServer) -> None:
    async with _browser(server) as http:
        csrf = await _sign_in(http, ADMIN_USERNAME, ADMIN_PASSWORD)
        copied = dict(http.cookies)
        out = await http.delete("/_/session", headers={"X-Roost-CSRF": csrf})
        assert out.status_code == 200
        assert "roost_dashboard" not in http.cookies
    async with httpx.AsyncClient(base_url=server.url, cookies=copied) as replay:
        answer = await replay.post("/api/v1/auth/whoami", headers={"X-Roost-CSRF": csrf})
        assert answer.status_code == 401


async def test_the_websocket_takes_the_cookie_only_with_the_csrf_token(
    server: RunningServer,
) -> None:
    async with _browser(server) as http:
        csrf = await _sign_in(http, ADMIN_USERNAME, ADMIN_PASSWORD)
        cookie = f"roost_dashboard={http.cookies['roost_dashboard']}"
    url = server.url.replace("http://", "ws://") + "/api/v1/ws"
    call = json.dumps({"id": 1, "method": "auth.whoami", "params": {}})
    async with connect(f"{url}?csrf_token={csrf}", additional_headers={"Cookie": cookie}) as ws:
        await ws.send(call)
        frame: dict[str, Any] = json.loads(await ws.recv())
        assert frame["result"]["username"] == ADMIN_USERNAME
    # a page of another site opening our WebSocket: the browser sends the cookie, not the token
    async with connect(url, additional_headers={"Cookie": cookie}) as ws:
        await ws.send(call)
        frame = json.loads(await ws.recv())
        assert frame["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "a\x00b", "password": "x"}, "username"),
        ({"username": "admin", "password": "x", "tenant": "Not A Tenant"}, "tenant"),
        ({"username": "admin", "password": "x", "role": "admin"}, "role"),
        ({"username": "u" * 300, "password": "x"}, "username"),
        ({"username": 2**64, "password": "x"}, "username"),
    ],
)
async def test_a_bad_sign_in_is_a_4xx_naming_the_field(
    server: RunningServer, body: dict[str, Any], field: str
) -> None:
    async with _browser(server) as http:
        answer = await http.post("/_/session", json=body, headers=SIGNIN)
    assert answer.status_code == 400, answer.text
    assert field in json.dumps(answer.json()["error"])


async def test_a_huge_or_deep_sign_in_is_refused(server: RunningServer) -> None:
    async with _browser(server) as http:
        huge = await http.post("/_/session", content=b"{" + b" " * 100_000, headers=SIGNIN)
        assert huge.status_code in (400, 413)
        deep = await http.post("/_/session", content=b"[" * 10_000, headers=SIGNIN)
        assert deep.status_code == 400


async def test_the_page_cannot_be_framed_and_runs_only_its_own_scripts(
    server: RunningServer,
) -> None:
    async with _browser(server) as http:
        page = await http.get("/_/")
        assert page.status_code == 200
        policy = page.headers["content-security-policy"]
        assert "default-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
        assert page.headers["x-frame-options"] == "DENY"
        for path in ("/_/../pyproject.toml", "/_/%2e%2e/server/app.py", "/_/..%2f__init__.py"):
            assert (await http.get(path)).status_code == 404, path
