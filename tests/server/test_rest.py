"""The REST door over real HTTP: formats, limits, errors, idempotency, docs."""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import msgspec
import pytest

from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique

JSON = {"content-type": "application/json"}


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    error: dict[str, Any] = body["error"]
    return error


def _admin_headers(http: httpx.Client) -> dict[str, str]:
    tokens = http.post(
        "/api/v1/auth/login", json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}
    ).json()
    return {"authorization": f"Bearer {tokens['access']}"}


def test_health_answers_get_with_every_backend(http: httpx.Client, server: RunningServer) -> None:
    report = http.get("/api/v1/health").json()
    assert report["status"] == "ok"
    assert report["backends"]["sql"]["backend"] == server.backend
    assert report["backends"]["storage"]["status"] == "ok"
    assert report["backends"]["storage"]["backend"] == "file"


def test_s3_storage_is_prepared_at_start_and_checked_by_health(
    make_server: Callable[..., RunningServer], s3_endpoint: str
) -> None:
    url = f"s3://test:test@{unique('roost-')}?endpoint={s3_endpoint}&region=us-east-1"
    on_s3 = make_server(storage_url=url)
    with httpx.Client(base_url=on_s3.url) as http:
        storage = http.get("/api/v1/health").json()["backends"]["storage"]
    assert (storage["status"], storage["backend"]) == ("ok", "s3")


def test_bad_storage_url_is_refused_at_start() -> None:
    from roost.errors import ConfigurationError
    from roost.settings import load_settings

    with pytest.raises(ConfigurationError) as caught:
        load_settings(storage_url="ftp://x")
    assert "ROOST_STORAGE_URL" in caught.value.message


def test_malformed_json_is_a_400_that_says_so(http: httpx.Client) -> None:
    response = http.post("/api/v1/auth/login", content=b'{"username": ', headers=JSON)
    assert response.status_code == 400
    assert "not valid json" in _error(response)["message"]


def test_wrong_field_type_names_the_field(http: httpx.Client) -> None:
    response = http.post("/api/v1/auth/login", json={"username": 5, "password": "x"})
    assert response.status_code == 400
    assert _error(response)["details"] == {"field": "username"}


def test_unknown_field_is_refused(http: httpx.Client) -> None:
    response = http.post("/api/v1/auth/login", json={"username": "a", "password": "b", "x": 1})
    assert response.status_code == 400
    assert "x" in _error(response)["message"]


def test_oversized_body_is_a_413_before_it_is_read(
    make_server: Callable[..., RunningServer],
) -> None:
    small = make_server(max_body_bytes=2048)
    with httpx.Client(base_url=small.url) as http:
        declared = http.post("/api/v1/auth/login", content=b"x" * 5000, headers=JSON)
        assert declared.status_code == 413
        assert _error(declared)["code"] == "payload_too_large"

        def chunks() -> Iterator[bytes]:
            for _ in range(10):
                yield b"x" * 1000

        streamed = http.post("/api/v1/auth/login", content=chunks(), headers=JSON)
        assert streamed.status_code == 413
        bomb = gzip.compress(b'{"username": "' + b"a" * 100_000 + b'"}')
        inflated = http.post(
            "/api/v1/auth/login", content=bomb, headers={**JSON, "content-encoding": "gzip"}
        )
        assert inflated.status_code == 413


def test_unsupported_content_type_is_a_415(http: httpx.Client) -> None:
    response = http.post(
        "/api/v1/auth/login",
        content=b"username=a",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415
    assert _error(response)["code"] == "unsupported_media_type"


def test_unknown_operation_and_wrong_method(http: httpx.Client) -> None:
    missing = http.post("/api/v1/nothing/here", json={})
    assert missing.status_code == 404
    assert _error(missing)["code"] == "not_found"
    wrong_method = http.get("/api/v1/auth/login")
    assert wrong_method.status_code == 405
    assert _error(wrong_method)["code"] == "method_not_allowed"


def test_unknown_authorization_scheme_is_refused(http: httpx.Client) -> None:
    response = http.post("/api/v1/auth/me", json={}, headers={"authorization": "Basic YTpi"})
    assert response.status_code == 401
    assert "Basic" in _error(response)["message"]


def test_forged_jwt_is_refused(http: httpx.Client) -> None:
    forged = (
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4IiwidG50IjoiZGVmYXVsdCIsInNpZCI6IngiLCJleHAiOj"
        "k5OTk5OTk5OTl9.c2lnbmF0dXJl"
    )
    response = http.post("/api/v1/auth/me", json={}, headers={"authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert _error(response)["code"] == "invalid_credentials"


def test_bad_and_unknown_tenant_headers(http: httpx.Client) -> None:
    bad = http.post("/api/v1/auth/login", json={}, headers={"x-roost-tenant": "../etc"})
    assert bad.status_code == 400
    assert _error(bad)["details"] == {"field": "X-Roost-Tenant"}
    unknown = http.post("/api/v1/auth/login", json={}, headers={"x-roost-tenant": "no-such"})
    assert unknown.status_code == 404


def test_msgpack_in_and_out(http: httpx.Client) -> None:
    body = msgspec.msgpack.encode({"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
    response = http.post(
        "/api/v1/auth/login", content=body, headers={"content-type": "application/msgpack"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/msgpack"
    assert "access" in msgspec.msgpack.decode(response.content)


def test_gzip_response_when_accepted(http: httpx.Client) -> None:
    response = http.get("/api/v1/openapi.json", headers={"accept-encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.json()["openapi"].startswith("3.")


def test_request_id_is_echoed_or_made(http: httpx.Client) -> None:
    assert (
        http.get("/api/v1/health", headers={"x-request-id": "abc-123"}).headers["x-request-id"]
        == "abc-123"
    )
    assert len(http.get("/api/v1/health").headers["x-request-id"]) == 32


def test_openapi_lists_every_operation_and_docs_page_renders(http: httpx.Client) -> None:
    document = http.get("/api/v1/openapi.json").json()
    assert "/api/v1/auth/login" in document["paths"]
    assert "/api/v1/batch" in document["paths"]
    login = document["paths"]["/api/v1/auth/login"]["post"]
    assert "security" not in login
    assert "security" in document["paths"]["/api/v1/auth/me"]["post"]
    page = http.get("/docs/operations")
    assert page.status_code == 200
    assert "auth.login" in page.text


def test_idempotency_key_replays_the_first_outcome(http: httpx.Client) -> None:
    headers = {**_admin_headers(http), "idempotency-key": uuid.uuid4().hex}
    body = {"username": unique("idem"), "password": "idem-password"}
    first = http.post("/api/v1/users/create_user", json=body, headers=headers)
    again = http.post("/api/v1/users/create_user", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    other = http.post(
        "/api/v1/users/create_user", json={**body, "username": unique("x")}, headers=headers
    )
    assert other.status_code == 400
    assert _error(other)["details"] == {"field": "Idempotency-Key"}
    fresh = http.post(
        "/api/v1/users/create_user",
        json=body,
        headers={**headers, "idempotency-key": uuid.uuid4().hex},
    )
    assert fresh.status_code == 409


def test_malformed_idempotency_key_is_refused(http: httpx.Client) -> None:
    response = http.post(
        "/api/v1/auth/logout", json={}, headers={**_admin_headers(http), "idempotency-key": "short"}
    )
    assert response.status_code == 400
    assert _error(response)["details"] == {"field": "Idempotency-Key"}


def test_batch_refuses_an_empty_list(http: httpx.Client) -> None:
    response = http.post("/api/v1/batch", json={"operations": []})
    assert response.status_code == 400


def test_batch_items_are_checked_for_scope_each(http: httpx.Client) -> None:
    name = unique("member")
    http.post("/api/v1/auth/register", json={"username": name, "password": "member-pass"})
    tokens = http.post("/api/v1/auth/login", json={"username": name, "password": "member-pass"})
    headers = {"authorization": f"Bearer {tokens.json()['access']}"}
    answer = http.post(
        "/api/v1/batch",
        headers=headers,
        json={"operations": [{"command": "auth.me"}, {"command": "tenants.list"}]},
    ).json()
    assert [item["status"] for item in answer["results"]] == ["success", "error"]
    assert answer["results"][1]["error"]["code"] == "missing_scope"


def test_failed_logins_are_rate_limited_per_address(
    make_server: Callable[..., RunningServer],
) -> None:
    limited = make_server(login_failures_per_address=3, login_failures_per_account=100)
    with httpx.Client(base_url=limited.url) as http:
        for attempt in range(3):
            response = http.post(
                "/api/v1/auth/login", json={"username": f"nobody{attempt}", "password": "x"}
            )
            assert response.status_code == 401
        blocked = http.post(
            "/api/v1/auth/login", json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}
        )
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) > 0


def test_signup_can_be_disabled(make_server: Callable[..., RunningServer]) -> None:
    closed = make_server(allow_signup=False)
    with httpx.Client(base_url=closed.url) as http:
        response = http.post(
            "/api/v1/auth/register", json={"username": "someone", "password": "some-password"}
        )
        assert response.status_code == 403


def test_no_input_gets_a_500(http: httpx.Client) -> None:
    """A sweep of odd bodies over every operation: all answered with a 4xx or 2xx."""
    document = http.get("/api/v1/openapi.json").json()
    headers = _admin_headers(http)
    odd_bodies: list[Any] = [
        None,
        [],
        "x",
        1,
        {"name": None},
        {"username": "\x00"},
        {"page": -1},
        {"name": "a" * 5000},
    ]
    for path in document["paths"]:
        if path.endswith(("/logout", "/delete", "/revoke", "/delete_user")):
            continue
        for body in odd_bodies:
            response = http.post(path, content=json.dumps(body), headers={**JSON, **headers})
            assert response.status_code < 500, (path, body, response.text)


def test_host_prefix_selects_the_tenant(make_server: Callable[..., RunningServer]) -> None:
    hosted = make_server(base_domain="roost.test")
    with httpx.Client(base_url=hosted.url) as http:
        admin = _admin_headers(http)
        tenant = unique("h")
        assert http.post("/api/v1/tenants/create", json={"name": tenant}, headers=admin).is_success
        body = {"username": "alice", "password": "alice-password"}
        registered = http.post(
            "/api/v1/auth/register", json=body, headers={"host": f"{tenant}.roost.test"}
        )
        assert registered.status_code == 200
        tokens = http.post(
            "/api/v1/auth/login", json=body, headers={"host": f"{tenant}.roost.test"}
        ).json()
        who = http.post(
            "/api/v1/auth/whoami", json={}, headers={"authorization": f"Bearer {tokens['access']}"}
        ).json()
        assert who["tenant"] == tenant
        in_default = http.post("/api/v1/auth/login", json=body)
        assert in_default.status_code == 401
        unknown = http.post("/api/v1/auth/login", json=body, headers={"host": "nope.roost.test"})
        assert unknown.status_code == 404


def test_queue_changes_answer_success_as_they_always_have(http: httpx.Client) -> None:
    headers = _admin_headers(http)
    queue = unique("q")

    def post(path: str, body: dict[str, Any]) -> Any:
        answer = http.post(f"/api/v1/{path}", json=body, headers=headers)
        assert answer.status_code == 200, answer.text
        return answer.json()

    post("queue/publish", {"queue": queue, "message": {"n": 1}})
    message = post("queue/consume", {"queue": queue})["message"]
    assert post("queue/ack", {"queue": queue, "message_id": message["message_id"]}) == {
        "success": True
    }
