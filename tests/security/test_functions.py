"""Functions, attacked: each scope refused, scopes a deployer does not hold, a function doing
more than it declared or than its caller holds, runtime tokens outliving their caller or
forged, call chains, other tenants and users, and bundles built to escape or explode."""

from __future__ import annotations

import io
import os
import stat
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest

from roost.services.functions.tokens import CallerRef, RuntimeClaims, RuntimeTokens
from tests.conftest import RunningServer, platform_of, unique
from tests.deployed import (
    another_user,
    api_key,
    deploy,
    deploy_bundle,
    deployed,
    error_of,
    execute,
    sign_in,
    zip_of,
)

ECHO = "def main(params, user_data):\n    return params\n"
KV_PROBE = """
    from roost import Client, RoostError

    def main(params, user_data):
        outcomes = []
        with Client(max_retries=0) as client:
            for attempt in (lambda: client.kv.get(params), lambda: client.kv.set(params, 1)):
                try:
                    attempt()
                    outcomes.append("ok")
                except RoostError as exc:
                    outcomes.append(exc.code)
        return outcomes
"""


@pytest.fixture(scope="module")
def http(functions_server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=functions_server.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def admin(http: httpx.Client) -> dict[str, str]:
    return sign_in(http)


def refused(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = error_of(response)
    if code is not None:
        assert error["code"] == code, error
    return error


# -- scopes ----------------------------------------------------------------------------------


def test_each_functions_scope_is_refused_without_it(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    name = deployed(http, admin, ECHO)
    reader = api_key(http, admin, ["functions:read"])
    runner = api_key(http, admin, ["functions:execute"])
    deployer = api_key(http, admin, ["functions:deploy"])
    refused(deploy(http, reader, unique("fn"), ECHO), 403, "missing_scope")
    refused(execute(http, reader, name), 403, "missing_scope")
    refused(execute(http, deployer, name), 403, "missing_scope")
    for operation in ("list", "get", "versions"):
        body = {} if operation == "list" else {"name": name}
        response = http.post(f"/api/v1/functions/{operation}", json=body, headers=runner)
        refused(response, 403, "missing_scope")
    refused(http.post("/api/v1/functions/invocations", json={}, headers=runner), 403)
    refused(http.post(f"/api/v1/fn/{name}", json={}, headers=reader), 403, "missing_scope")
    # no scope, no answer about which functions exist
    refused(http.post("/api/v1/fn/no-such-function", json={}, headers=reader), 403)
    assert execute(http, runner, name, 1).json()["data"] == 1
    scopes = {s["name"] for s in http.post("/api/v1/scopes/list", headers=admin).json()}
    assert {"functions:deploy", "functions:execute", "functions:read"} <= scopes


def test_a_deployer_hands_on_only_scopes_and_secrets_they_hold(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    deployer = api_key(http, admin, ["functions:deploy", "kv:read"])
    error = refused(deploy(http, deployer, unique("fn"), ECHO, scopes=["kv:write"]), 403)
    assert error["details"]["scopes"] == ["kv:write"]
    refused(deploy(http, deployer, unique("fn"), ECHO, secrets=["API_KEY"]), 403)
    assert deploy(http, deployer, unique("fn"), ECHO, scopes=["kv:read"]).status_code == 200


def test_a_function_never_does_more_than_it_declared(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    name = deployed(http, admin, KV_PROBE, scopes=["kv:read"])
    assert execute(http, admin, name, unique("k")).json()["data"] == ["ok", "missing_scope"]


def test_a_function_never_does_more_than_its_caller(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    name = deployed(http, admin, KV_PROBE, scopes=["kv:read", "kv:write"])
    caller = api_key(http, admin, ["functions:execute", "kv:read"])
    assert execute(http, caller, name, unique("k")).json()["data"] == ["ok", "missing_scope"]
    assert execute(http, admin, name, unique("k")).json()["data"] == ["ok", "ok"]


# -- runtime tokens --------------------------------------------------------------------------


def mint(
    server: RunningServer,
    whoami: dict[str, Any],
    limits: tuple[frozenset[str], ...] = (frozenset({"*"}),),
    expires_in: float = 60,
) -> dict[str, str]:
    """Headers with a runtime token the server itself would issue to a run for `whoami`."""
    tokens = RuntimeTokens(platform_of(server).access_tokens)
    token = tokens.issue(
        RuntimeClaims(
            tenant=whoami["tenant"],
            caller=CallerRef(whoami["user_id"], whoami.get("session_id")),
            limits=limits,
            function="probe",
            execution_id=unique("run"),
            expires_at=time.time() + expires_in,
        )
    )
    return {"authorization": f"Bearer {token}"}


def test_a_runtime_token_dies_with_its_callers_session(
    http: httpx.Client, functions_server: RunningServer
) -> None:
    session = sign_in(http)
    whoami = http.post("/api/v1/auth/whoami", headers=session).json()
    token = mint(functions_server, whoami)
    acting = http.post("/api/v1/auth/whoami", headers=token).json()
    assert (acting["kind"], acting["user_id"]) == ("function", whoami["user_id"])
    # a function acts for its caller, it cannot make credentials of its own
    refused(http.post("/api/v1/api_keys/create", json={"name": "x"}, headers=token), 403)
    http.post("/api/v1/auth/logout", headers=session).raise_for_status()
    refused(http.post("/api/v1/auth/whoami", headers=token), 401, "token_revoked")


def test_forged_expired_and_foreign_runtime_tokens_are_refused(
    http: httpx.Client, admin: dict[str, str], functions_server: RunningServer
) -> None:
    whoami = http.post("/api/v1/auth/whoami", headers=admin).json()
    forged = "rft_" + jwt.encode(
        {"typ": "function", "iss": "roost", "tnt": "default", "sub": whoami["user_id"],
         "lim": [["*"]], "fn": "x", "exe": "y", "exp": int(time.time()) + 60},
        "not-the-servers-key-" * 4,
        algorithm="HS256",
    )  # fmt: skip
    refused(http.post("/api/v1/auth/whoami", headers={"authorization": f"Bearer {forged}"}), 401)
    access = admin["authorization"].removeprefix("Bearer ")
    posing = {"authorization": f"Bearer rft_{access}"}  # an access token is no runtime token
    refused(http.post("/api/v1/auth/whoami", headers=posing), 401, "invalid_credentials")
    expired = mint(functions_server, whoami, expires_in=-10)
    refused(http.post("/api/v1/auth/whoami", headers=expired), 401, "token_expired")
    other = {**mint(functions_server, whoami), "x-roost-tenant": "elsewhere"}
    refused(http.post("/api/v1/auth/whoami", headers=other), 401, "wrong_tenant")


def test_call_chains_of_functions_stop_at_eight(
    http: httpx.Client, admin: dict[str, str], functions_server: RunningServer
) -> None:
    name = deployed(http, admin, ECHO)
    whoami = http.post("/api/v1/auth/whoami", headers=admin).json()
    deep = mint(functions_server, whoami, limits=(frozenset({"*"}),) * 8)
    refused(execute(http, deep, name), 400, "call_chain_too_deep")
    shallow = mint(functions_server, whoami, limits=(frozenset({"*"}),) * 7)
    assert execute(http, shallow, name, 7).json()["data"] == 7


# -- tenants and users -----------------------------------------------------------------------


def test_another_tenant_sees_nothing_of_a_tenants_functions(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    name = deployed(http, admin, ECHO)
    invocation = execute(http, admin, name, 1).json()["invocation"]["id"]
    tenant = unique("t")
    http.post(
        "/api/v1/tenants/create",
        json={"name": tenant, "admin_username": "root", "admin_password": "root-password"},
        headers=admin,
    ).raise_for_status()
    other = {**sign_in_tenant(http, tenant), "x-roost-tenant": tenant}
    refused(http.post("/api/v1/functions/get", json={"name": name}, headers=other), 404)
    refused(execute(http, other, name), 404)
    refused(http.post(f"/api/v1/fn/{name}", json={}, headers=other), 404)
    refused(http.post("/api/v1/functions/get_result", json={"id": invocation}, headers=other), 404)
    listed = http.post("/api/v1/functions/list", json={}, headers=other).json()
    assert listed == {"results": [], "count": 0}


def sign_in_tenant(http: httpx.Client, tenant: str) -> dict[str, str]:
    response = http.post(
        "/api/v1/auth/login",
        json={"username": "root", "password": "root-password"},
        headers={"x-roost-tenant": tenant},
    )
    response.raise_for_status()
    return {"authorization": f"Bearer {response.json()['access']}"}


def test_a_callers_results_are_hidden_from_other_users(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    name = deployed(http, admin, ECHO)
    secret_run = execute(http, admin, name, "admin's data").json()["invocation"]["id"]
    other = another_user(http, admin, ["functions:execute"])
    own = execute(http, other, name, "mine").json()["invocation"]["id"]
    refused(http.post("/api/v1/functions/get_result", json={"id": secret_run}, headers=other), 404)
    mine = http.post("/api/v1/functions/get_result", json={"id": own}, headers=other)
    assert mine.json()["data"]["result"] == "mine"
    # functions:read reads every invocation of the tenant
    theirs = http.post("/api/v1/functions/get_result", json={"id": own}, headers=admin)
    assert theirs.json()["data"]["result"] == "mine"


def test_a_hostile_function_fails_and_the_next_call_succeeds(
    http: httpx.Client, admin: dict[str, str], functions_server: RunningServer
) -> None:
    data_dir = functions_server.settings.data_dir.resolve()
    hostile = deployed(
        http, admin, "def main(params, user_data):\n    return open(params).read()\n"
    )
    for target in ("/etc/shadow", str(data_dir / "secret.key"), str(data_dir / "roost.db")):
        failed = execute(http, admin, hostile, target)
        error = refused(failed, 422, "function_failed")
        assert "Error" in error["message"]  # FileNotFoundError or PermissionError
    assert execute(http, admin, deployed(http, admin, ECHO), "after").json()["data"] == "after"


# -- what a deploy may send ------------------------------------------------------------------


def _symlink() -> zipfile.ZipInfo:
    info = zipfile.ZipInfo("link.py")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def _with_nul() -> bytes:
    """A zip whose entry is named `evil.py\\0.txt` (zipfile itself cuts names at NUL)."""
    data = zip_of({"main.py": ECHO, "evil.pyX.txt": "x"})
    return data.replace(b"evil.pyX.txt", b"evil.py\x00.txt")


def _patched(data: bytes, name: str, local: int, central: int, value: int, size: int) -> bytes:
    """`data` with a field of entry `name` set to `value`, in its local header (at offset
    `local`) and in its central directory record (at `central`), as a hand-made zip would."""
    patched = bytearray(data)
    start = zipfile.ZipFile(io.BytesIO(data)).getinfo(name).header_offset
    patched[start + local : start + local + size] = value.to_bytes(size, "little")
    record = patched.index(b"PK\x01\x02")
    while patched[record + 46 : record + 46 + len(name)] != name.encode():
        record = patched.index(b"PK\x01\x02", record + 1)
    patched[record + central : record + central + size] = value.to_bytes(size, "little")
    return bytes(patched)


def _encrypted() -> bytes:
    """An entry flagged encrypted (general purpose bit 0)."""
    return _patched(zip_of({"main.py": ECHO, "secret.py": "x"}), "secret.py", 6, 8, 1, 2)


def _lying_sizes() -> bytes:
    """One entry that inflates to 1 MiB while its headers say 10 bytes."""
    data = zip_of({"main.py": ECHO, "big.bin": b"\0" * (1 << 20)})
    return _patched(data, "big.bin", 22, 24, 10, 4)


def _two_of(name: str) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr(name, ECHO)
            archive.writestr(name, ECHO)
    return buffer.getvalue()


def _bomb() -> bytes:
    """65 MiB of zeros (the server's limit is 64 once unpacked), 65 KiB zipped."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("main.py", "w") as entry:
            entry.write(ECHO.encode())
        with archive.open("zeros.bin", "w", force_zip64=True) as entry:
            chunk = b"\0" * (1 << 20)
            for _ in range(65):
                entry.write(chunk)
    return buffer.getvalue()


BUNDLES: dict[str, tuple[Callable[[], bytes], int, str]] = {
    "parent segment": (lambda: zip_of({"main.py": ECHO, "../evil.py": "x"}), 400, "bad_bundle"),
    "hidden parent": (lambda: zip_of({"main.py": ECHO, "a/../../b.py": "x"}), 400, "bad_bundle"),
    "absolute name": (lambda: zip_of({"main.py": ECHO, "/etc/cron.d/x": "x"}), 400, "bad_bundle"),
    "backslash": (lambda: zip_of({"main.py": ECHO, "a\\..\\b.py": "x"}), 400, "bad_bundle"),
    "symlink": (lambda: zip_of({"main.py": ECHO}, link=_symlink()), 400, "bad_bundle"),
    "encrypted": (_encrypted, 400, "bad_bundle"),
    "NUL in a name": (_with_nul, 400, "bad_bundle"),
    "duplicate names": (lambda: _two_of("main.py"), 400, "bad_bundle"),
    "lying sizes": (_lying_sizes, 400, "bad_bundle"),
    "zip bomb": (_bomb, 413, "payload_too_large"),
    "too many files": (
        lambda: zip_of({"main.py": ECHO, **{f"f{n}.txt": "" for n in range(2000)}}),
        400,
        "validation_error",
    ),
    "not a zip": (lambda: b"PK\x03\x04 but nothing more", 400, "validation_error"),
    "too large": (lambda: os.urandom(8 * 1024 * 1024 + 1), 413, "payload_too_large"),
    "no entry module": (lambda: zip_of({"other.py": ECHO}), 400, "validation_error"),
}


@pytest.mark.parametrize("case", BUNDLES)
def test_bundles_that_break_a_rule_are_refused_with_4xx(server: RunningServer, case: str) -> None:
    make, status, code = BUNDLES[case]
    with httpx.Client(base_url=server.url, timeout=60) as http:
        response = deploy_bundle(http, sign_in(http), unique("fn"), make())
        error = refused(response, status, code)
        assert error["details"]["field"] == "bundle" or code == "validation_error"


SOURCES: dict[str, tuple[dict[str, Any], int, str, str]] = {
    "NUL in code": ({"code": "def main(p, u):\n    return '\x00'\n"}, 400, "validation_error", "code"),
    "syntax error": ({"code": "def main(:\n"}, 400, "syntax_error", "code"),
    "no handler": ({"code": "def other(p, u):\n    pass\n"}, 400, "validation_error", "entrypoint"),
    "both sources": ({"code": ECHO, "bundle": "UEsFBg=="}, 400, "validation_error", "code"),
    "neither source": ({}, 400, "validation_error", "code"),
    "bad entrypoint": ({"code": ECHO, "entrypoint": "os.system"}, 400, "validation_error", "entrypoint"),
    "runtime's variable": ({"code": ECHO, "secrets": ["ROOST_TOKEN"]}, 400, "validation_error", "secrets"),
    "long timeout": ({"code": ECHO, "timeout": 86400}, 400, "validation_error", "timeout"),
    "short timeout": ({"code": ECHO, "timeout": 0.5}, 400, "validation_error", "timeout"),
    "bad schema": ({"code": ECHO, "params_schema": {"type": "nope"}}, 400, "validation_error", "params_schema"),
    "remote $ref": (
        {"code": ECHO, "params_schema": {"$ref": "https://example.com/s.json"}},
        400,
        "validation_error",
        "params_schema",
    ),
    "huge version": ({"code": ECHO, "memory_mb": 2**63}, 400, "validation_error", "memory_mb"),
    "looping schema": ({"code": ECHO, "params_schema": {"$ref": "#"}}, 400, "validation_error", "params_schema"),
    "backtracking pattern": (
        {"code": ECHO, "params_schema": {"pattern": "^(?=a)"}},
        400,
        "validation_error",
        "params_schema",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", SOURCES)
def test_deploys_that_break_a_rule_are_refused_naming_the_field(
    server: RunningServer, case: str
) -> None:
    body, status, code, field = SOURCES[case]
    with httpx.Client(base_url=server.url, timeout=60) as http:
        response = http.post(
            "/api/v1/functions/deploy", json={"name": unique("fn"), **body}, headers=sign_in(http)
        )
    error = refused(response, status, code)
    assert error["details"]["field"] == field


def test_a_caller_cannot_shorten_a_timeout_below_a_second(server: RunningServer) -> None:
    """A run past its timeout costs its worker's kill and a new worker's start: a caller who
    may only execute must not have that happen on every call by asking for 1 ns."""
    with httpx.Client(base_url=server.url, timeout=60) as http:
        admin = sign_in(http)
        name = deployed(http, admin, ECHO)
        for timeout in (1e-9, 0.5):
            error = refused(execute(http, admin, name, timeout=timeout), 400, "validation_error")
            assert error["details"]["field"] == "timeout"


def test_a_deleted_tenant_leaves_no_code_behind(
    http: httpx.Client, admin: dict[str, str], functions_server: RunningServer
) -> None:
    tenant = unique("t")
    http.post(
        "/api/v1/tenants/create",
        json={"name": tenant, "admin_username": "root", "admin_password": "root-password"},
        headers=admin,
    ).raise_for_status()
    root = {**sign_in_tenant(http, tenant), "x-roost-tenant": tenant}
    name = deployed(http, root, ECHO)
    assert execute(http, root, name, "ran").json()["data"] == "ran"  # unpacked to run
    data_dir = functions_server.settings.data_dir
    assert (data_dir / "functions" / tenant).is_dir()
    http.post("/api/v1/tenants/delete", json={"name": tenant}, headers=admin).raise_for_status()
    assert not (data_dir / "functions" / tenant).exists()
    assert not (data_dir / "files" / tenant).exists()  # the blob store: its bundles
