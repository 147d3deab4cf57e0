"""What tests of deployed functions share: signing in over HTTP, deploying, bundles."""

from __future__ import annotations

import base64
import io
import textwrap
import time
import zipfile
from typing import Any

import httpx

from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, unique


def sign_in(
    http: httpx.Client, username: str = ADMIN_USERNAME, password: str = ADMIN_PASSWORD
) -> dict[str, str]:
    """Headers of a fresh session of `username`."""
    response = http.post("/api/v1/auth/login", json={"username": username, "password": password})
    response.raise_for_status()
    return {"authorization": f"Bearer {response.json()['access']}"}


def api_key(http: httpx.Client, admin: dict[str, str], scopes: list[str]) -> dict[str, str]:
    """Headers of an API key of the admin's with `scopes` only."""
    response = http.post(
        "/api/v1/api_keys/create", json={"name": unique("key"), "scopes": scopes}, headers=admin
    )
    response.raise_for_status()
    return {"authorization": f"Api-Key {response.json()['key']}"}


def code(source: str) -> str:
    return textwrap.dedent(source).lstrip()


def deploy(
    http: httpx.Client, headers: dict[str, str], name: str, source: str, **options: Any
) -> httpx.Response:
    """Deploy `source` (dedented) as function `name`; the response, whatever it is."""
    return http.post(
        "/api/v1/functions/deploy",
        json={"name": name, "code": code(source), **options},
        headers=headers,
    )


def deployed(http: httpx.Client, headers: dict[str, str], source: str, **options: Any) -> str:
    """Deploy `source` under a fresh name, which is answered."""
    name = unique("fn")
    response = deploy(http, headers, name, source, **options)
    assert response.status_code == 200, response.text
    return name


def execute(
    http: httpx.Client, headers: dict[str, str], name: str, params: Any = None, **options: Any
) -> httpx.Response:
    return http.post(
        "/api/v1/functions/execute",
        json={"name": name, "params": params, **options},
        headers=headers,
        timeout=60,
    )


def zip_of(files: dict[str, bytes | str], **infos: zipfile.ZipInfo) -> bytes:
    """A zip of `files` (name -> content), plus entries made by hand (`infos`)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
        for info in infos.values():
            archive.writestr(info, b"x")
    return buffer.getvalue()


def error_of(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


def deploy_bundle(
    http: httpx.Client, headers: dict[str, str], name: str, bundle: bytes, **options: Any
) -> httpx.Response:
    """Deploy a zip (sent as base64 in JSON, as the SDK does) as function `name`."""
    return http.post(
        "/api/v1/functions/deploy",
        json={"name": name, "bundle": base64.b64encode(bundle).decode(), **options},
        headers=headers,
    )


GATED = """
    import os
    import time

    from roost import Client

    def main(params, user_data):
        with Client() as client:
            runs = client.kv.incr("runs:" + os.environ["ROOST_EXECUTION_ID"])
            gate = (params or {}).get("gate")
            while gate and not client.kv.get(gate).found:
                time.sleep(0.05)
        return {"runs": runs}
"""
"""Counts its runs in KV (`runs:<invocation id>`), then, given `{"gate": key}`, waits until
that KV key is set: a run the test can hold STARTED for as long as it needs."""
GATED_OPTIONS: dict[str, Any] = {"scopes": ["kv:read", "kv:write"], "timeout": 300}


def result_of(http: httpx.Client, headers: dict[str, str], invocation: str) -> dict[str, Any]:
    """`functions.get_result(invocation)["data"]`."""
    response = http.post("/api/v1/functions/get_result", json={"id": invocation}, headers=headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def wait_status(
    http: httpx.Client,
    headers: dict[str, str],
    invocation: str,
    statuses: tuple[str, ...] = ("SUCCESS", "FAILURE", "TIMEOUT"),
    seconds: float = 60,
) -> dict[str, Any]:
    """The result of an invocation once its status is one of `statuses` (fails the test if
    that does not come within `seconds`)."""
    deadline = time.monotonic() + seconds
    while True:
        data = result_of(http, headers, invocation)
        if data["status"] in statuses:
            return data
        if time.monotonic() > deadline:
            raise AssertionError(f"invocation {invocation} stayed {data['status']}")
        time.sleep(0.05)


def open_gate(http: httpx.Client, headers: dict[str, str], gate: str) -> None:
    response = http.post("/api/v1/kv/set", json={"key": gate, "value": True}, headers=headers)
    assert response.status_code == 200, response.text


def runs_of(http: httpx.Client, headers: dict[str, str], invocation: str) -> int:
    """How many times GATED started for `invocation`."""
    response = http.post("/api/v1/kv/get", json={"key": f"runs:{invocation}"}, headers=headers)
    assert response.status_code == 200, response.text
    return int(response.json()["value"] or 0)


def wait_running(
    http: httpx.Client, headers: dict[str, str], invocation: str, seconds: float = 60
) -> None:
    """Return once GATED has started for `invocation` (counted its run, not only STARTED)."""
    deadline = time.monotonic() + seconds
    while runs_of(http, headers, invocation) < 1:
        data = result_of(http, headers, invocation)
        if data["status"] not in ("PENDING", "STARTED") or time.monotonic() > deadline:
            raise AssertionError(f"invocation {invocation} did not start running: {data}")
        time.sleep(0.05)


def another_user(http: httpx.Client, admin: dict[str, str], scopes: list[str]) -> dict[str, str]:
    """A session of a new user whose one role holds `scopes`."""
    role, user = unique("role"), unique("user")
    http.post(
        "/api/v1/roles/create", json={"name": role, "scopes": scopes}, headers=admin
    ).raise_for_status()
    http.post(
        "/api/v1/users/create_user",
        json={"username": user, "password": "user-password-1", "roles": [role]},
        headers=admin,
    ).raise_for_status()
    return sign_in(http, user, "user-password-1")


def publish(http: httpx.Client, headers: dict[str, str], topic: str, message: Any) -> None:
    """`pubsub.publish(topic, message)`."""
    http.post(
        "/api/v1/pubsub/publish", json={"topic": topic, "message": message}, headers=headers
    ).raise_for_status()


# a function whose first caller's run opens a pub/sub subscription and keeps it in the warm
# worker's globals; a later run answers what it received meanwhile
KEEPS_A_SUBSCRIPTION = """
    import asyncio
    from roost import AsyncClient

    KEPT = []

    async def main(params, user_data):
        if params["step"] == "subscribe":  # the first caller's run: a subscription, kept
            client = AsyncClient()
            received = []
            await client.pubsub.subscribe([params["topic"]], lambda _, message: received.append(message))
            KEPT.append(received)
            return "subscribed"
        await asyncio.sleep(1)  # the next caller's run: what the kept subscription receives
        return KEPT[0] if KEPT else None
"""
