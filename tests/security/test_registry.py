"""The registry is explicit and complete: what a fresh interpreter builds is what a server
serves, every scope any operation checks is in `scopes.list` (so none can be taken as a
tenant's own), and subscriptions and streamed operations are documented."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import subprocess
import sys

import httpx
import pytest

import roost.services
from roost.services import MODULES, build_registry
from roost.services.registry import operations_of
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer

_FRESH = """
import json
from roost.services import build_registry
print(json.dumps(sorted([op.name, op.kind, op.scope] for op in build_registry())))
"""


def admin_headers(http: httpx.Client) -> dict[str, str]:
    tokens = http.post(
        "/api/v1/auth/login", json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}
    ).json()
    return {"Authorization": f"Bearer {tokens['access']}"}


def test_registry_built_in_a_fresh_interpreter_is_what_the_server_serves(
    server: RunningServer,
) -> None:
    fresh = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", _FRESH], capture_output=True, text=True, check=True
    )
    built = {name: (kind, scope) for name, kind, scope in json.loads(fresh.stdout)}
    assert {"pubsub.publish", "pubsub.subscribe", "database.export"} <= set(built)
    document = httpx.get(f"{server.url}/api/v1/openapi.json").json()
    served = {
        item["post"]["operationId"]: item["post"].get("x-roost-kind", "unary")
        for path, item in document["paths"].items()
        if "post" in item and path != "/api/v1/batch"
    }
    served |= {name: "subscription" for name in document["x-roost-subscriptions"]}
    assert served == {name: kind for name, (kind, _) in built.items()}
    for name, sub in document["x-roost-subscriptions"].items():
        assert sub["scope"] == built[name][1]


def test_every_module_that_declares_operations_is_in_the_list() -> None:
    declaring = set()
    for info in pkgutil.walk_packages(roost.services.__path__, "roost.services."):
        module = importlib.import_module(info.name)
        if operations_of(module):
            declaring.add(info.name.removeprefix("roost.services."))
    assert {"auth.sessions", "auth.navigation", "roles", "settings"} <= declaring
    assert declaring == set(MODULES)


def test_each_operation_lives_in_the_module_its_name_names() -> None:
    """`x.y` is in `services/x.py` or the package `services/x/`: its name says where it is."""
    misplaced = {}
    for op in build_registry():
        home = f"roost.services.{op.module}"
        found = op.handler.__module__
        if found != home and not found.startswith(f"{home}."):
            misplaced[op.name] = found
    assert misplaced == {}


def test_every_scope_an_operation_checks_is_in_scopes_list(server: RunningServer) -> None:
    needed = build_registry().scopes()
    assert {"pubsub:read", "pubsub:write", "stream:read", "database:read"} <= needed
    with httpx.Client(base_url=server.url) as http:
        headers = admin_headers(http)
        listed = http.post("/api/v1/scopes/list", headers=headers).json()
        builtin = {scope["name"] for scope in listed if scope["builtin"]}
        assert needed <= builtin
        # a platform scope cannot be taken as the tenant's own (it was: pubsub:read)
        for scope in ("pubsub:read", "database:read"):
            taken = http.post(
                "/api/v1/scopes/create",
                json={"name": scope, "description": "mine"},
                headers=headers,
            )
            assert taken.status_code == 409, taken.text
            assert taken.json()["error"]["details"] == {"field": "name"}


def test_subscriptions_and_streams_are_in_openapi_and_docs(server: RunningServer) -> None:
    document = httpx.get(f"{server.url}/api/v1/openapi.json").json()
    subscriptions = document["x-roost-subscriptions"]
    assert set(subscriptions) == {
        "stream.subscribe",
        "pubsub.subscribe",
        "database.subscribe",
        "logs.tail",
        "queue.watch",
        "triggers.watch_deliveries",
    }
    assert subscriptions["queue.watch"]["scope"] == "queue:read"
    assert subscriptions["triggers.watch_deliveries"]["scope"] == "triggers:read"
    pubsub = subscriptions["pubsub.subscribe"]
    assert pubsub["scope"] == "pubsub:read"
    assert pubsub["params"] == {"$ref": "#/components/schemas/PubSubSubscribeRequest"}
    assert pubsub["event"] == {"$ref": "#/components/schemas/PubSubMessage"}
    export = document["paths"]["/api/v1/database/export"]["post"]
    assert export["x-roost-kind"] == "stream"
    line = export["responses"]["200"]["content"]["application/x-ndjson"]["schema"]
    assert set(line["properties"]) == {"chunk", "end", "error"}
    page = httpx.get(f"{server.url}/docs/operations").text
    shown = (
        "stream.subscribe",
        "pubsub.subscribe",
        "database.subscribe",
        "logs.tail",
        "queue.watch",
    )
    for name in (*shown, "database.export"):
        assert f'id="{name}"' in page


def test_a_subscription_is_not_served_over_http_and_a_stream_not_as_a_call(
    server: RunningServer,
) -> None:
    with httpx.Client(base_url=server.url) as http:
        headers = admin_headers(http)
        answer = http.post("/api/v1/pubsub/subscribe", json={"patterns": ["a"]}, headers=headers)
        assert answer.status_code == 404
        batch = http.post(
            "/api/v1/batch",
            json={"operations": [{"command": "stream.subscribe", "payload": {"room": "r"}}]},
            headers=headers,
        )
        error = batch.json()["results"][0]["error"]
        assert error["code"] == "wrong_operation_kind"
        assert "WebSocket" in error["message"]


@pytest.mark.parametrize("name", ["stream.subscribe", "pubsub.subscribe", "database.subscribe"])
def test_subscriptions_are_registry_entries_with_a_scope(name: str) -> None:
    op = build_registry().get(name)
    assert op is not None
    assert op.kind == "subscription"
    assert op.scope is not None


# what a handler calls to revoke credentials (directly, or through these helpers of its own)
_REVOKING_STEPS = (
    "forget_principals(",
    "revoke_sessions(",
    "sign_out_member_accounts(",
    "unlink(",
    "forget_account(",
    "memberships.remove(",
    "await forget(ctx.platform",
)


def test_every_operation_that_revokes_credentials_runs_to_its_end() -> None:
    # a call cancelled between the commit of a revocation and the principal caches being told
    # left the revoked credential acting for the cache's ttl (up to a minute)
    unmarked = []
    for op in build_registry():
        source = inspect.getsource(inspect.unwrap(op.handler))
        if any(step in source for step in _REVOKING_STEPS) and not op.revokes:
            unmarked.append(op.name)
    assert unmarked == []
    assert sum(op.revokes for op in build_registry()) >= 18
