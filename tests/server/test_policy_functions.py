"""A function bound to policies runs only for callers they allow to `execute` it with the
params given, by every way of calling it (execute, async execute, stream, `fn.<name>`), on
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import RunningServer, unique
from tests.deployed import deployed, error_of, execute, sign_in
from tests.policy_documents import allow, kind_name, resource_policy

ECHO = """
    def main(params, user_data):
        return params
"""
PASSWORD = "runner-password-1"


@pytest.fixture(scope="module")
def http(functions_server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=functions_server.url, timeout=60) as client:
        yield client


def _post(http: httpx.Client, path: str, body: object, headers: dict[str, str]) -> httpx.Response:
    response = http.post(path, json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response


def test_a_bound_function_runs_only_for_callers_the_policies_allow(http: httpx.Client) -> None:
    admin = sign_in(http)
    name, bound_kind, role, user = (
        deployed(http, admin, ECHO),
        kind_name(),
        unique("run"),
        unique("u"),
    )
    free = deployed(http, admin, ECHO)
    _post(http, "/api/v1/roles/create", {"name": role, "scopes": ["functions:execute"]}, admin)
    made = _post(
        http,
        "/api/v1/users/create_user",
        {"username": user, "password": PASSWORD, "confirm_password": PASSWORD, "roles": [role]},
        admin,
    ).json()
    rule = allow(["execute"], [role], "R.attr.params.to == P.id")
    _post(http, "/api/v1/policies/put", {"policies": [resource_policy(bound_kind, [rule])]}, admin)
    _post(
        http,
        "/api/v1/policies/bind",
        {"target": "function", "name": name, "resource_kind": bound_kind},
        admin,
    )
    caller = sign_in(http, user, PASSWORD)
    mine, theirs = {"to": str(made["id"])}, {"to": "someone else"}
    assert execute(http, caller, name, mine).json()["data"] == mine
    for refused in (
        execute(http, caller, name, theirs),
        execute(http, caller, name, theirs, is_async=True),
        http.post(f"/api/v1/fn/{name}", json=theirs, headers=caller),
        http.post(
            "/api/v1/functions/stream", json={"name": name, "params": theirs}, headers=caller
        ),
    ):
        assert refused.status_code == 403, refused.text
        assert error_of(refused)["code"] == "policy_denied"
    assert execute(http, caller, free, theirs).json()["data"] == theirs  # not bound
    _post(http, "/api/v1/policies/unbind", {"target": "function", "name": name}, admin)
    assert execute(http, caller, name, theirs).json()["data"] == theirs
