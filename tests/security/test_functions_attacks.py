"""Functions, attacked again: each test here is a hole found by a hostile pass over the
runtime (`roost.functions`) and the service (`services/functions`). Each fails on the code it
was written against and passes once the hole is closed; the docstring says what the attack
is and what a fix must give."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import io
import json
import secrets
import socket
import subprocess
import sys
import textwrap
import time
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from roost import AsyncClient
from roost.functions.pool import WorkerPool
from tests.conftest import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    RunningServer,
    platform_of,
    start_server,
    unique,
)
from tests.deployed import (
    GATED,
    GATED_OPTIONS,
    KEEPS_A_SUBSCRIPTION,
    another_user,
    deploy,
    deploy_bundle,
    deployed,
    error_of,
    execute,
    publish,
    result_of,
    sign_in,
    wait_running,
    wait_status,
    zip_of,
)

ECHO = "def main(params, user_data):\n    return params\n"
TMP_BYTES = 1024 * 1024
MAX_OUTPUT = 32 * 1024 * 1024


def _uid_base() -> int:
    """Worker uids of a server of this module's own: 20M-36M in steps of 16 (more than any
    pool here holds), apart from the other tests' servers (2M-18M). Each xdist worker that
    runs tests of this module starts its own servers, so a range as narrow as the old one
    (899 places) met itself now and then: a pool refuses uids in use, and its server ran no
    functions."""
    return 20_000_000 + secrets.randbelow(1_000_000) * 16


def _server(factory: pytest.TempPathFactory, **overrides: Any) -> Iterator[RunningServer]:
    running = start_server(
        factory.mktemp("roost-fn-attack"),
        functions_enabled=True,
        functions_uid_base=_uid_base(),
        **overrides,
    )
    yield running
    running.stop()


# session-scoped, as `functions_server` is: workers cost a process each
@pytest.fixture(scope="session")
def sandboxed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Two workers under bubblewrap (what `auto` picks where namespaces work)."""
    yield from _server(
        tmp_path_factory,
        functions_isolation="bubblewrap",
        functions_pool_size=2,
        functions_max_output_bytes=MAX_OUTPUT,
    )


@pytest.fixture(scope="session")
def fallback(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One worker under the fallback isolation (Landlock, seccomp, a uid of its own), with a
    private tmp of 1 MiB."""
    yield from _server(
        tmp_path_factory,
        functions_isolation="fallback",
        functions_pool_size=1,
        functions_tmp_bytes=TMP_BYTES,
        # long, so that a WebSocket kept from an earlier run is surely not checked again by
        # the clock (test_a_websocket_kept_by_a_warm_worker_does_not_outlive_its_run)
        ws_reidentify_seconds=60,
    )


@pytest.fixture(scope="module")
def http(sandboxed: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandboxed.url, timeout=90) as client:
        yield client


@pytest.fixture(scope="module")
def admin(http: httpx.Client) -> dict[str, str]:
    return sign_in(http)


@pytest.fixture(scope="module")
def fallback_http(fallback: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fallback.url, timeout=90) as client:
        yield client


def run(
    http: httpx.Client, headers: dict[str, str], source: str, params: Any = None, **options: Any
) -> httpx.Response:
    """Deploy `source` under a fresh name and execute it once."""
    return execute(http, headers, deployed(http, headers, source, **options), params)


# -- the fallback sandbox ------------------------------------------------------------------


CONNECT = """
    import socket

    def main(params, user_data):
        with socket.create_connection((params[0], params[1]), timeout=10) as conn:
            conn.sendall(b"exfiltrated")
        return "connected"
"""


def test_a_fallback_worker_reaches_no_other_host_on_the_api_port(
    fallback: RunningServer, fallback_http: httpx.Client
) -> None:
    """Landlock's TCP rule names a port, not an address: a fallback worker may connect to
    any host on the API's port (with an https API on 443: any HTTPS server on the internet).
    Here a listener on 127.0.0.2, on the port the API listens on at 127.0.0.1, gets a
    connection from a function. Fix: the fallback reaches the API only through a relay it
    cannot redirect (sandbox.py/confine.py: a Unix socket to the relay, as bubblewrap has,
    with seccomp then refusing AF_INET), or a seccomp/BPF check on connect's address."""
    port = int(fallback.url.rsplit(":", 1)[1])
    elsewhere = socket.create_server(("127.0.0.2", port))
    elsewhere.setblocking(False)
    try:
        admin = sign_in(fallback_http)
        response = run(fallback_http, admin, CONNECT, ["127.0.0.2", port])
        try:
            came, _ = elsewhere.accept()
        except BlockingIOError:
            pass  # nobody came
        else:
            came.close()
            pytest.fail("a function connected to 127.0.0.2 on the API's port")
        assert response.status_code == 422, response.text
        assert "PermissionError" in error_of(response)["message"]
    finally:
        elsewhere.close()


SYSV_SHM = """
    import ctypes, os

    def main(params, user_data):
        if params == "die":
            os._exit(3)
        if params == "noop":
            return 0
        libc = ctypes.CDLL(None, use_errno=True)
        # IPC_PRIVATE, 1 MiB, IPC_CREAT | 0600: kept by the kernel until someone removes it
        return libc.shmget(0, 1 << 20, 0o1000 | 0o600)
"""


def _shm_ids() -> set[int]:
    lines = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    return {int(line.split()[1]) for line in lines}


def _remove_shm(shm_id: int) -> None:
    ctypes.CDLL(None, use_errno=True).shmctl(shm_id, 0, None)  # IPC_RMID


def test_sysv_shared_memory_does_not_outlive_a_fallback_worker(
    fallback_http: httpx.Client,
) -> None:
    """The fallback has no IPC namespace and its seccomp filter lets shmget/msgget/semget
    through: a function makes System V segments (tmpfs memory outside RLIMIT_AS, on the
    host's IPC namespace) that stay after its worker is killed and replaced; in a loop it
    fills the host's memory. Fix: confine.DENIED_SYSCALLS gains shmget, shmat, msgget, semget
    (and mq_open), or the pool removes a uid's IPC objects when it kills its worker."""
    admin = sign_in(fallback_http)
    name = deployed(fallback_http, admin, SYSV_SHM)
    made = execute(fallback_http, admin, name).json()["data"]
    try:
        died = execute(fallback_http, admin, name, "die")  # the worker is killed and replaced
        assert died.status_code == 422, died.text
        # the pool's one place serves again once the dead worker is gone
        assert execute(fallback_http, admin, name, "noop").json()["data"] == 0
        assert made == -1 or made not in _shm_ids(), f"segment {made} outlived its worker"
    finally:
        if made != -1 and made in _shm_ids():
            _remove_shm(made)


FILL_TMP = """
    import os, tempfile

    def main(params, user_data):
        written = 0
        for n in range(params["files"]):
            with open(os.path.join(tempfile.gettempdir(), f"fill{n}"), "wb") as out:
                out.write(b"x" * params["each"])
            written += params["each"]
        return written
"""


def test_a_fallback_workers_tmp_is_bounded_as_a_whole(fallback_http: httpx.Client) -> None:
    """Under bubblewrap /tmp is a tmpfs of ROOST_FUNCTIONS_TMP_BYTES; the fallback only caps
    each file at that size (RLIMIT_FSIZE), so a function writes as many such files as it likes
    into its tmp on the host's disk (the run dir: the system's temporary folder by default)
    and fills it for the server and everyone else within one run. Here three files of almost
    the whole allowance all land. Fix (sandbox.Slot.reset): a size-bounded tmpfs mounted on
    each slot's tmp when the pool runs as root (else a per-uid disk quota, or refuse the
    fallback), so that the total is bounded, not each file."""
    admin = sign_in(fallback_http)
    each = TMP_BYTES - 4096
    response = run(fallback_http, admin, FILL_TMP, {"files": 3, "each": each})
    if response.status_code == 200:
        assert response.json()["data"] <= TMP_BYTES, "the tmp took three times its size"
    else:
        assert error_of(response)["code"] == "function_failed", response.text


# -- the pool: one tenant, every worker ----------------------------------------------------


OUTER = """
    from roost import Client

    def main(params, user_data):
        with Client(max_retries=0) as client:
            return client.functions.execute(params, 21)["data"]
"""


def test_a_function_calling_another_does_not_deadlock_a_full_pool(
    fallback_http: httpx.Client,
) -> None:
    """Functions call functions (issue 13), but the inner call waits for a worker while the
    outer one holds it: with every worker held by outer calls (here the pool's one) each inner
    call waits until its outer call times out, so chains fail by timeout under load. Fix
    (pool.WorkerPool.run, invocations._run_sync): a call from a running function never waits
    on workers its own chain holds: an extra worker per chain level (MAX_CHAIN bounds them),
    or an immediate refusal (503) the outer function sees at once."""
    admin = sign_in(fallback_http)
    inner = deployed(fallback_http, admin, "def main(params, user_data):\n    return params * 2\n")
    outer = deployed(fallback_http, admin, OUTER, scopes=["functions:execute"], timeout=8)
    response = execute(fallback_http, admin, outer, inner)
    if response.status_code == 200:
        assert response.json()["data"] == 42
    else:  # a refusal of the inner call is an answer; waiting out the timeout is not
        assert error_of(response)["code"] != "function_timeout", response.text


HOLD = """
    import time

    def main(params, user_data):
        yield "started"
        for _ in range(240):  # something to send: a reader that left is seen within 0.25 s
            time.sleep(0.25)
            yield "holding"
"""


def test_one_tenant_cannot_hold_every_worker(http: httpx.Client, admin: dict[str, str]) -> None:
    """Workers are shared by every tenant with no share per tenant: one tenant's long calls
    (streams left open, async runs queued by the thousand, or plain slow calls) take every
    worker, and every other tenant's calls wait behind them (up to the 900 s a function may
    declare, again and again). Fix (pool.WorkerPool.run / invocations): a tenant runs at most
    a share of the pool at once (ROOST_FUNCTIONS_MAX_RUNS_PER_TENANT, below the pool size);
    its calls past it are refused with 429 (async ones wait in their own tenant's queue)."""
    name = deployed(http, admin, HOLD, timeout=60)
    started = []
    readers = []  # a line iterator dropped closes its connection: the stream would end there
    with ExitStack() as streams:
        for _ in range(2):  # the pool's size
            response = streams.enter_context(
                http.stream("POST", f"/api/v1/fn/{name}", json=None, headers=admin)
            )
            if response.status_code == 429:
                continue
            assert response.status_code == 200
            readers.append(response.iter_lines())
            started.append(json.loads(next(readers[-1])))
    assert len(started) < 2, "one tenant holds every worker of the pool"


FLOOD_THEN_LINGER = """
    import time
    from roost import Client

    def main(params, user_data):
        for _ in range(32):  # 16 MiB: more than the sockets between a server and a reader hold
            yield "x" * (512 * 1024)
        time.sleep(params["linger"])  # past the timeout: the pool should have killed it
        with Client(max_retries=0) as client:
            client.kv.set(params["key"], "ran past its timeout")
        yield "done"
"""


def _stalled_reader(
    server: RunningServer, headers: dict[str, str], name: str, params: Any
) -> socket.socket:
    """A client that calls `POST /api/v1/fn/<name>` and never reads the answer."""
    host, port = server.url.removeprefix("http://").split(":")
    body = json.dumps(params).encode()
    reader = socket.socket()
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    reader.connect((host, int(port)))
    head = (
        f"POST /api/v1/fn/{name} HTTP/1.1\r\nhost: {host}\r\n"
        f"authorization: {headers['authorization']}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    reader.sendall(head.encode() + body)
    return reader


def test_a_streamed_run_is_stopped_at_its_timeout_even_if_nobody_reads_it(
    sandboxed: RunningServer, http: httpx.Client, admin: dict[str, str]
) -> None:
    """The pool enforces a run's timeout only while it waits for the worker's next event
    (pool.WorkerPool._drive): once a streamed run's reader stops reading and the sockets
    fill, the door stops pulling items, `_drive` stays suspended at its `yield`, and the
    handler runs on past its timeout, holding its worker and acting with its token for as
    long as the reader likes. Here it writes to the KV store 2 s after its 3 s timeout.
    Fix (pool.WorkerPool.run): a watchdog task per run that kills the worker at the deadline
    whether or not anyone pulls the events."""
    pool = platform_of(sandboxed).functions
    assert isinstance(pool, WorkerPool)
    name = deployed(http, admin, FLOOD_THEN_LINGER, timeout=3, scopes=["kv:write"])
    key = unique("lingered")

    def stopped() -> int:  # runs ended, or workers killed, for their timeout
        stats = pool.stats()
        return stats.timeouts + stats.replaced.get("timeout", 0)

    before = stopped()
    reader = _stalled_reader(sandboxed, admin, name, {"linger": 5, "key": key})
    try:
        for _ in range(1200):  # the first of the two to happen decides
            if stopped() > before:
                return  # stopped at its timeout
            found = http.post("/api/v1/kv/get", json={"key": key}, headers=admin)
            if found.json().get("found"):
                pytest.fail("a streamed run nobody reads ran past its timeout")
            time.sleep(0.05)
        pytest.fail("the run neither timed out nor lingered")
    finally:
        reader.close()


LEAK_THEN_FLOOD = """
    import os, time
    from roost import Client

    def main(params, user_data):
        with Client() as client:  # the token sent where its author can read it
            client.kv.set(params, os.environ["ROOST_TOKEN"])
        for _ in range(32):  # more than the sockets between a server and a reader hold
            yield "x" * (512 * 1024)
        time.sleep(60)
        yield "done"
"""


def test_a_stalled_streams_token_ends_at_its_timeout(
    sandboxed: RunningServer, http: httpx.Client, admin: dict[str, str]
) -> None:
    """The pool kills a streamed run's worker at its timeout whether or not anyone reads, but
    the run was recorded (and its token ended) only when its reader read on or went away: a
    reader that stalls kept a token the function had sent out acting as the caller until the
    timeout plus 30 s. Fix (invocations._run_streamed): the run is recorded at its timeout."""
    name = deployed(http, admin, LEAK_THEN_FLOOD, timeout=2, scopes=["kv:write"])
    key = unique("leaked")
    reader = _stalled_reader(sandboxed, admin, name, key)
    try:
        deadline = time.monotonic() + 60
        while not (found := http.post("/api/v1/kv/get", json={"key": key}, headers=admin).json())[
            "found"
        ]:
            assert time.monotonic() < deadline, "the function sent no token"
            time.sleep(0.05)
        bearer = {"authorization": f"Bearer {found['value']}"}
        deadline = time.monotonic() + 15  # the run's 2 s, and then some
        while (after := http.post("/api/v1/auth/whoami", headers=bearer)).status_code == 200:
            assert time.monotonic() < deadline, "the token acts past its run's timeout"
            time.sleep(0.1)
        assert after.status_code == 401, after.text
        listed = http.post(
            "/api/v1/functions/invocations", json={"name": name}, headers=admin
        ).json()["results"]
        assert [run["status"] for run in listed] == ["TIMEOUT"], listed
    finally:
        reader.close()


# -- runtime tokens and what a run leaves behind -------------------------------------------


TOKEN = "import os\n\ndef main(params, user_data):\n    return os.environ['ROOST_TOKEN']\n"


def test_a_runtime_token_is_refused_once_its_run_has_ended(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    """A run's token lives until the function's timeout plus 30 s, however soon the run ends:
    a function that hands its token out (returns it, stores it, sends it from a thread that
    outlives the run) lets its author act as the caller for up to 15 minutes after the run.
    Fix (principals._from_runtime_token): refuse a token whose execution has ended (the
    invocation recorded with a final status; a sync run recorded before its answer)."""
    token = execute(http, admin, deployed(http, admin, TOKEN, timeout=600)).json()["data"]
    after = http.post("/api/v1/auth/whoami", headers={"authorization": f"Bearer {token}"})
    assert after.status_code == 401, after.text


USES_ITS_TOKEN = """
    import os
    from roost import Client

    def main(params, user_data):
        with Client() as client:  # the token acts (and is cached by the server) during the run
            client.auth.whoami()
        return os.environ["ROOST_TOKEN"]
"""


def test_a_runtime_token_used_in_its_run_is_refused_as_soon_as_the_run_ends(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    """The server forgets what it cached of a run's token at the run's end only if the token
    was presented while the run went on (most runs never call back: hashing every token to
    forget nothing cost each warm call). A token that acted during its run is in that cache:
    presented again at once, well before the run's record is written, it must be refused."""
    name = deployed(http, admin, USES_ITS_TOKEN, timeout=600)
    for _ in range(3):
        token = execute(http, admin, name).json()["data"]
        after = http.post("/api/v1/auth/whoami", headers={"authorization": f"Bearer {token}"})
        assert after.status_code == 401, after.text


USES_ANOTHER_SPELLING = """
    import os
    from roost import AuthenticationError, Client

    def main(params, user_data):
        token = os.environ["ROOST_TOKEN"]
        os.environ["ROOST_TOKEN"] = token + "="  # the same token to PyJWT, another cache key
        try:
            with Client() as client:
                client.auth.whoami()
        except AuthenticationError as exc:
            return {"token": token, "refused": exc.code}
        return {"token": token, "refused": None}
"""


def test_a_queued_run_of_a_caller_signed_out_meanwhile_does_not_run(
    fallback: RunningServer, fallback_http: httpx.Client
) -> None:
    """A queued run acts as its caller when it starts. Runners keep callers loaded for the
    next runs of the same caller (the principal cache): a sign-out must reach them too."""
    http, admin = fallback_http, sign_in(fallback_http)
    gated, echo = deployed(http, admin, GATED, **GATED_OPTIONS), deployed(http, admin, ECHO)
    caller = sign_in(http)  # a session of its own, signed out below
    # the server's one runner place (one worker) is held by a run of the caller's, which
    # loads the caller and then waits for a gate nobody opens
    first = execute(http, caller, gated, {"gate": unique("gate")}, is_async=True)
    assert first.status_code == 200, first.text
    wait_running(http, caller, first.json()["invocation"]["id"])
    # a function that never calls back: only the runner's own look at the caller stops it
    second = execute(http, caller, echo, {"x": 1}, is_async=True)
    assert second.status_code == 200, second.text
    http.post("/api/v1/auth/logout", headers=caller).raise_for_status()
    # the first run's token died with the session: its place frees, the second starts now
    ended = wait_status(http, admin, second.json()["invocation"]["id"])
    assert (ended["status"], ended["result"]) == ("FAILURE", None), ended
    assert "signed out" in ended["error"], ended


def test_a_runtime_token_spelled_otherwise_is_refused(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    """The principal cache is keyed by a credential's text, and PyJWT reads a token with `=`
    after it: the run's end forgot the token as issued, and the other spelling, loaded during
    the run, went on acting as the caller for the cache's lifetime. Fix
    (principals.authenticate): a runtime token has one spelling, the one it was issued in."""
    answer = execute(http, admin, deployed(http, admin, USES_ANOTHER_SPELLING))
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert data["refused"] == "invalid_credentials", data
    for token in (data["token"], data["token"] + "="):
        after = http.post("/api/v1/auth/whoami", headers={"authorization": f"Bearer {token}"})
        assert after.status_code == 401, after.text


LEAKS_ITS_TOKEN = """
    import os, time
    from roost import Client

    def main(params, user_data):
        with Client() as client:  # the token sent where its author can read it, then a long run
            client.kv.set(params, os.environ["ROOST_TOKEN"])
        time.sleep(60)
        return "done"
"""


def test_a_runtime_token_does_not_outlive_a_run_its_caller_cancelled(
    http: httpx.Client, admin: dict[str, str], sandboxed: RunningServer
) -> None:
    """A sync run whose caller went away (a WebSocket call cancelled, or past its timeout) was
    recorded by nobody: its worker was killed, but the run was never marked over, so a token
    the function had sent out acted as the caller until the function's timeout plus 30 s.
    Fix (runs.run_to_end): a stopped sync run is recorded as a FAILURE, and its token ends."""
    name = deployed(http, admin, LEAKS_ITS_TOKEN, timeout=120, scopes=["kv:write"])
    key = unique("leaked")

    async def cancel_the_run() -> str:
        async with AsyncClient(api_url=sandboxed.url) as anonymous:
            client = await anonymous.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
            call = asyncio.create_task(
                client.realtime.call("functions.execute", {"name": name, "params": key})
            )
            deadline = time.monotonic() + 60
            while not (found := await client.kv.get(key)).found:
                assert not call.done(), call
                assert time.monotonic() < deadline, "the function sent no token"
                await asyncio.sleep(0.05)
            call.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await call
            return str(found.value)

    token = asyncio.run(cancel_the_run())
    bearer = {"authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 10  # the server learns of the cancel over the WebSocket
    while (after := http.post("/api/v1/auth/whoami", headers=bearer)).status_code == 200:
        assert time.monotonic() < deadline, "the token still acts after its run was cancelled"
        time.sleep(0.05)
    assert after.status_code == 401, after.text
    record = wait_failed(http, admin, name)
    assert "cancelled" in record["error"], record


def wait_failed(http: httpx.Client, admin: dict[str, str], name: str) -> dict[str, Any]:
    """The function's one invocation, once it is recorded as a FAILURE."""
    deadline = time.monotonic() + 10
    while True:
        listed = http.post(
            "/api/v1/functions/invocations", json={"name": name}, headers=admin
        ).json()["results"]
        if listed and listed[0]["status"] == "FAILURE":
            return result_of(http, admin, listed[0]["id"])
        assert time.monotonic() < deadline, listed
        time.sleep(0.05)


KEEPS_ITS_WEBSOCKET = """
    from roost import AsyncClient

    KEPT = []

    async def main(params, user_data):
        if not KEPT:  # the first caller's run: a WebSocket opened under its token, kept
            KEPT.append(AsyncClient())
        whoami = await KEPT[0].realtime.call("auth.whoami")
        return whoami["username"]
"""


def test_a_websocket_kept_by_a_warm_worker_does_not_outlive_its_run(
    fallback_http: httpx.Client,
) -> None:
    """A worker stays warm for the next caller of its function, with the module globals of
    the last run: a WebSocket a run opened and kept there (a socket, not a thread, so the
    worker is not replaced) is authenticated as that run's caller, and the door checked its
    credential again only after `ws_reidentify_seconds`. So the next caller's run acted as
    the first caller. Fix (server/rpc.py): a connection of a runtime token is identified
    again for every call, and the token ends with its run."""
    admin = sign_in(fallback_http)
    name = deployed(fallback_http, admin, KEEPS_ITS_WEBSOCKET, timeout=30)
    first = execute(fallback_http, admin, name)
    assert (first.status_code, first.json()["data"]) == (200, ADMIN_USERNAME), first.text
    other = another_user(fallback_http, admin, ["functions:execute"])
    second = execute(fallback_http, other, name)
    assert second.status_code == 422, second.text
    assert "token_expired" in second.text or "run is over" in second.text, second.text


@pytest.fixture(scope="module")
def slow_watch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One worker (every run meets the last one's globals), and connections that check their
    credential once a minute only (the default is every 5 s)."""
    yield from _server(tmp_path_factory, functions_pool_size=1, ws_credential_watch_seconds=60)


def test_a_subscription_kept_by_a_warm_worker_ends_with_its_run(
    slow_watch: RunningServer,
) -> None:
    """Calls on a connection opened with a runtime token are identified again each time, but a
    subscription only at the next credential check: one kept in a warm worker's globals went
    on receiving what its first caller may read while the next caller's run went on there.
    Fix (server/ws.py): a connection opened with a runtime token closes when its run ends."""
    with httpx.Client(base_url=slow_watch.url, timeout=90) as http:
        admin = sign_in(http)
        name = deployed(http, admin, KEEPS_A_SUBSCRIPTION, timeout=30, scopes=["pubsub:read"])
        topic = unique("private")
        first = execute(http, admin, name, {"step": "subscribe", "topic": topic})
        assert (first.status_code, first.json()["data"]) == (200, "subscribed"), first.text
        publish(http, admin, topic, "for the first caller only")
        other = another_user(http, admin, ["functions:execute"])
        second = execute(http, other, name, {"step": "look"})
        assert second.status_code == 200, second.text
        assert second.json()["data"] == [], second.text


THREAD = """
    import threading, time

    def main(params, user_data):
        if params == "start":
            threading.Thread(target=time.sleep, args=(600,), name="left-behind", daemon=True).start()
        return [t.name for t in threading.enumerate() if t.name == "left-behind"]
"""


def test_a_thread_started_by_a_run_does_not_outlive_it(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    """`Idle.clean` promises that no process or thread of a job is left behind, but the worker
    checks only processes (worker._children_left): a thread keeps running in the warm worker
    after the run is over, past its timeout, holding the run's token, and sees the next runs'
    environment. Fix (worker.Runner.run): a job that leaves a thread behind is unclean
    (threading.active_count() beyond the runtime's own), so its worker is replaced."""
    name = deployed(http, admin, THREAD)
    assert execute(http, admin, name, "start").json()["data"] == ["left-behind"]
    assert execute(http, admin, name, "look").json()["data"] == []


RAW_OUTPUT = """
    import os

    def main(params, user_data):
        if params == "crash":
            os._exit(3)
        os.write(1, f"for {user_data['username']} only: {params}\\n".encode())
        return "ok"
"""


def test_a_failure_message_holds_no_output_of_another_callers_run(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    """A worker keeps the last lines of its raw output (what a subprocess or a C library
    wrote) for the message of its death, across runs: a caller whose run crashes the warm
    worker reads, in their 422, what earlier runs of other callers wrote. Fix
    (process.WorkerProcess.send): clear `tail` when a job starts."""
    name = deployed(http, admin, RAW_OUTPUT)
    secret = unique("admins-private-")
    assert execute(http, admin, name, secret).json()["data"] == "ok"
    other = another_user(http, admin, ["functions:execute"])
    crashed = execute(http, other, name, "crash")
    assert crashed.status_code == 422, crashed.text
    assert secret not in json.dumps(crashed.json())


# -- what a deploy may declare --------------------------------------------------------------


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "#"},
        {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
        {"$ref": "#/$defs/missing"},
        {"$dynamicRef": "#nowhere"},
    ],
    ids=["itself", "a loop", "nowhere", "no anchor"],
)
def test_a_params_schema_that_cannot_be_followed_is_a_4xx_not_a_500(
    http: httpx.Client, admin: dict[str, str], schema: dict[str, Any]
) -> None:
    """`$ref`s inside the schema are allowed, but never followed at deploy: one that loops
    (RecursionError) or points nowhere (referencing's Unresolvable) breaks every later call
    with a 500. Fix (schemas.check_schema): resolve every reference at deploy and refuse
    loops without progress, or validate once against a sample and turn RecursionError and
    referencing errors into a 400 naming params_schema."""
    deployed_at = deploy(http, admin, unique("fn"), ECHO, params_schema=schema)
    if deployed_at.status_code == 400:
        assert error_of(deployed_at)["details"]["field"] == "params_schema"
        return
    name = deployed_at.json()["name"]
    response = execute(http, admin, name, {"a": 1})
    assert response.status_code < 500, response.text


def _file_under_a_folder_entry() -> bytes:
    """`pkg` is a file, and the folder entry `pkg/sub/` needs it to be a folder."""
    data = zip_of({"main.py": ECHO, "pkg": "not a folder"})
    buffer = io.BytesIO(data)
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr("pkg/sub/", b"")
    return buffer.getvalue()


def test_a_bundle_with_a_folder_entry_below_a_file_is_refused_at_deploy(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    """bundles._checked_entries adds the parents of files to the folders it compares with
    the files, not the parents of folder entries: a file `pkg` and a folder entry `pkg/sub/`
    pass the deploy, then unpacking fails (NotADirectoryError) and every call is a 500.
    Fix (bundles._checked_entries): add each folder entry's parents too."""
    name = unique("fn")
    response = deploy_bundle(http, admin, name, _file_under_a_folder_entry())
    if response.status_code == 200:
        ran = execute(http, admin, name)
        assert ran.status_code < 500, ran.text
    assert response.status_code == 400, response.text
    assert error_of(response)["code"] == "bad_bundle"


# -- params schemas on the event loop ------------------------------------------------------


_CHECK = """
import sys, json
from roost.services.functions.schemas import check_params
from roost.errors import ValidationError
schema, params = json.loads(sys.stdin.read())
try:
    check_params(schema, params)
except ValidationError:
    pass
print("checked")
"""

SLOW_CHECKS = {
    # exponential backtracking in Python's re: 2**40 steps for 40 characters
    "pattern": ({"type": "string", "pattern": "^(a|a)*$"}, "a" * 40 + "!"),
    # uniqueItems over dicts falls back on comparing every pair: 2e10 comparisons
    "uniqueItems": ({"type": "array", "uniqueItems": True}, [{"n": n} for n in range(200_000)]),
}


@pytest.mark.parametrize("case", SLOW_CHECKS)
def test_checking_params_against_a_schema_cannot_stall_the_server(
    http: httpx.Client, admin: dict[str, str], case: str
) -> None:
    """Params are checked against the function's schema on the server's event loop, in pure
    Python: a deployer's `pattern` that backtracks exponentially, or `uniqueItems` over a
    few hundred thousand objects (O(n^2) in jsonschema), makes one small call stop the whole
    server for hours. Both schemas deploy today. The check runs in a child process here
    (it would freeze this test's server) with a bound a million times what a linear check
    takes. Fix (schemas.check_params / check_schema): patterns matched by a linear engine
    (google-re2) or refused when they nest quantifiers, uniqueItems by hashing canonical
    JSON, and the check in a thread with a deadline."""
    schema, params = SLOW_CHECKS[case]
    deployed_at = deploy(http, admin, unique("fn"), ECHO, params_schema=schema)
    if deployed_at.status_code == 400:  # refused at deploy: never checked at all
        return
    assert deployed_at.status_code == 200, deployed_at.text
    try:
        done = subprocess.run(  # noqa: S603 - this interpreter and our own script
            [sys.executable, "-c", textwrap.dedent(_CHECK)],
            input=json.dumps([schema, params]),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"checking params against a {case} schema ran for more than 30 s")
    assert done.stdout.strip() == "checked", done.stderr
