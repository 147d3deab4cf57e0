"""Attack: read the idempotency replay cache at rest and find the credentials it answered.

`auth.login` (tokens) and `api_keys.create` (the key) with an Idempotency-Key used to leave
their whole answer in the KV store for 24 hours. The raw rows (SQLite files, PostgreSQL,
Redis) must hold no token, no key, no idempotency key and no plain hash of the request; a
replay with the same idempotency key still gets the first answer back.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Callable, Mapping

import asyncpg
import httpx
import pytest
import redis

from roost.backends.sql import CONTROL
from tests.conftest import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    POSTGRES_URL,
    REDIS_URL,
    RunningServer,
    platform_of,
    require_redis,
    unique,
)

BACKENDS = ["sqlite", "postgresql", "redis"]


def _start(make_server: Callable[..., RunningServer], backend: str) -> RunningServer:
    if backend == "redis":
        require_redis()
        return make_server("sqlite", redis_url=REDIS_URL)
    return make_server(backend)


def _raw_store(running: RunningServer) -> bytes:
    """Everything the KV store holds, read around the server."""
    if running.settings.redis_url:
        client = redis.Redis.from_url(running.settings.redis_url)
        dumped = []
        for key in client.scan_iter(count=1000):
            kind = client.type(key)
            if kind == b"string":
                dumped.append(key + b"=" + (client.get(key) or b""))
            elif kind == b"hash":
                dumped.append(key + b"=" + repr(client.hgetall(key)).encode())
        client.close()
        return b"\n".join(dumped)
    if running.backend == "postgresql":
        schema = platform_of(running).db.schema_of(CONTROL)

        async def rows() -> list[asyncpg.Record]:
            conn = await asyncpg.connect(POSTGRES_URL)
            try:
                found: list[asyncpg.Record] = await conn.fetch(
                    f'SELECT space, key, value FROM "{schema}".roost_kv'
                )
                return found
            finally:
                await conn.close()

        return "\n".join(repr(tuple(row)) for row in asyncio.run(rows())).encode()
    # SQLite: every byte of every database file, WAL included
    files = sorted(running.settings.data_dir.rglob("*.db*"))
    return b"\n".join(path.read_bytes() for path in files)


def _post(
    http: httpx.Client, path: str, body: Mapping[str, object], **headers: str
) -> httpx.Response:
    return http.post(path, json=body, headers=headers)


@pytest.mark.parametrize("backend", BACKENDS)
def test_replay_cache_keeps_no_issued_credential_at_rest(
    make_server: Callable[..., RunningServer], backend: str
) -> None:
    running = _start(make_server, backend)
    login = {"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}
    login_key, create_key = uuid.uuid4().hex, uuid.uuid4().hex
    with httpx.Client(base_url=running.url, timeout=30) as http:
        first = _post(http, "/api/v1/auth/login", login, **{"idempotency-key": login_key})
        again = _post(http, "/api/v1/auth/login", login, **{"idempotency-key": login_key})
        assert first.status_code == again.status_code == 200
        assert again.json() == first.json()  # the replay opens the sealed answer
        tokens = first.json()
        bearer = {"authorization": f"Bearer {tokens['access']}"}
        request = {"name": unique("ci-")}
        created = _post(
            http, "/api/v1/api_keys/create", request, **bearer, **{"idempotency-key": create_key}
        )
        replayed = _post(
            http, "/api/v1/api_keys/create", request, **bearer, **{"idempotency-key": create_key}
        )
        assert created.status_code == replayed.status_code == 200
        assert replayed.json()["key"] == created.json()["key"]
    stored = _raw_store(running)
    assert stored  # the records are there, only sealed
    for secret in (
        tokens["access"],
        tokens["refresh"],
        tokens["access"].split(".")[2],  # the JWT's signature alone
        tokens["refresh"].split("_", 3)[3],  # the secret (it may hold "_" itself)
        created.json()["key"],
        created.json()["key"].split("_", 3)[3],
        ADMIN_PASSWORD,
        login_key,
        create_key,
    ):
        assert secret.encode() not in stored, secret
    # a plain hash of the login request would let a reader of the store test passwords
    body = json.dumps(login).encode()
    plain = hashlib.sha256(b"/api/v1/auth/login\0" + body).hexdigest()
    assert plain.encode() not in stored


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_replay_still_refuses_another_request_and_another_caller(
    make_server: Callable[..., RunningServer], backend: str
) -> None:
    running = _start(make_server, backend)
    key = uuid.uuid4().hex
    login = {"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}
    with httpx.Client(base_url=running.url, timeout=30) as http:
        access = http.post("/api/v1/auth/login", json=login).json()["access"]
        bearer = {"authorization": f"Bearer {access}"}
        request = {"name": unique("ci-")}
        first = _post(
            http, "/api/v1/api_keys/create", request, **bearer, **{"idempotency-key": key}
        )
        assert first.status_code == 200
        other = _post(
            http,
            "/api/v1/api_keys/create",
            {"name": unique("other-")},
            **bearer,
            **{"idempotency-key": key},
        )
        assert other.status_code == 400
        assert other.json()["error"]["details"] == {"field": "Idempotency-Key"}
        # the same idempotency key from an anonymous caller finds nothing of the admin's
        stranger = _post(http, "/api/v1/api_keys/create", request, **{"idempotency-key": key})
        assert stranger.status_code == 401
        assert "key" not in stranger.json()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_replay_is_access_checked_and_bound_to_the_credential(
    make_server: Callable[..., RunningServer], backend: str
) -> None:
    """A narrow API key (kv:read) replayed the admin's api_keys.create with the same
    Idempotency-Key and got the admin's full-scope key back."""
    running = _start(make_server, backend)
    key = uuid.uuid4().hex
    login = {"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}
    with httpx.Client(base_url=running.url, timeout=30) as http:
        admin = {
            "authorization": f"Bearer {http.post('/api/v1/auth/login', json=login).json()['access']}"
        }
        narrow_key = _post(
            http, "/api/v1/api_keys/create", {"name": unique("n-"), "scopes": ["kv:read"]}, **admin
        )
        narrow = {"authorization": f"Api-Key {narrow_key.json()['key']}"}
        request = {"name": unique("ci-")}
        first = _post(http, "/api/v1/api_keys/create", request, **admin, **{"idempotency-key": key})
        assert first.status_code == 200
        replayed = _post(
            http, "/api/v1/api_keys/create", request, **narrow, **{"idempotency-key": key}
        )
        assert replayed.status_code == 403, replayed.text
        assert replayed.json()["error"]["code"] == "missing_scope"
        assert first.json()["key"] not in replayed.text
        # another session of the same admin, which may create keys, does not find it either
        relogin = http.post("/api/v1/auth/login", json=login).json()["access"]
        wide = {"authorization": f"Bearer {relogin}"}
        other = _post(http, "/api/v1/api_keys/create", request, **wide, **{"idempotency-key": key})
        assert other.status_code == 200
        assert other.json()["key"] != first.json()["key"]
        # a batch is admitted whole before its record is looked up
        batch = {"operations": [{"command": "api_keys.create", "payload": request}]}
        batch_key = uuid.uuid4().hex
        done = _post(http, "/api/v1/batch", batch, **admin, **{"idempotency-key": batch_key})
        assert done.json()["results"][0]["status"] == "success"
        refused = _post(http, "/api/v1/batch", batch, **narrow, **{"idempotency-key": batch_key})
        assert refused.status_code == 403
        assert done.json()["results"][0]["payload"]["key"] not in refused.text
        # the admin's own retry still gets the first answer
        again = _post(http, "/api/v1/api_keys/create", request, **admin, **{"idempotency-key": key})
        assert again.json()["key"] == first.json()["key"]
