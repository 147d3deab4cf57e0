"""Calls through a real pool of sandboxed workers: every handler shape, output capture, the
API through the sandbox's one door, warm reuse, and how the pool survives its workers."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from pathlib import Path

import pytest

from roost.errors import ConfigurationError, ServiceUnavailableError
from roost.functions import pool as pool_module
from roost.functions.pool import WorkerPool
from roost.functions.protocol import Failed, Finished, Item
from roost.settings import load_settings
from tests.conftest import RunningServer
from tests.functions.conftest import Code, call, job, public_folder, still_serves
from tests.waiting import wait_until

pytestmark = pytest.mark.anyio


async def test_a_sync_handler_answers_and_its_print_is_a_log_line(
    pool: WorkerPool, code: Code
) -> None:
    run = await call(pool, code.plain, "main", {"order": 7})
    assert run.result["params"] == {"order": 7}
    assert [(log.line, log.stream) for log in run.logs] == [("hello from user-1", "stdout")]


async def test_an_async_handler_answers(pool: WorkerPool, code: Code) -> None:
    assert (await call(pool, code.plain, "twice", 21)).result == 42


@pytest.mark.parametrize("entrypoint", ["count", "acount"])
async def test_a_generator_streams_its_items_or_gives_them_as_a_list(
    pool: WorkerPool, code: Code, entrypoint: str
) -> None:
    streamed = await call(pool, code.plain, entrypoint, 3, stream=True)
    assert streamed.items == [0, 1, 2]
    assert streamed.result is None
    assert (await call(pool, code.plain, entrypoint, 3)).result == [0, 1, 2]


async def test_logging_and_an_unfinished_line_are_log_events(pool: WorkerPool, code: Code) -> None:
    logs = (await call(pool, code.plain, "logs", 3)).logs
    assert [(log.line, log.stream, log.level) for log in logs] == [
        ("orders: low stock: 3", "logging", "WARNING"),
        ("partial line without newline", "stdout", "INFO"),
    ]


async def test_an_exception_is_a_failure_with_the_handlers_traceback(
    pool: WorkerPool, code: Code
) -> None:
    failure = (await call(pool, code.plain, "fails", 9)).failure
    assert failure.status == "FAILURE"
    assert failure.message == "ValueError: bad order 9"
    assert 'raise ValueError(f"bad order {params}")' in failure.traceback
    assert "roost/functions" not in failure.traceback  # the runtime's frames are not shown


async def test_a_result_msgpack_cannot_carry_is_a_clear_failure(
    pool: WorkerPool, code: Code
) -> None:
    failure = (await call(pool, code.plain, "unsendable")).failure
    assert failure.message.startswith("the result cannot be sent")


async def test_a_missing_entrypoint_is_a_failure_naming_it(pool: WorkerPool, code: Code) -> None:
    failure = (await call(pool, code.plain, "nothing_here")).failure
    assert failure.message == "LookupError: main has no function 'nothing_here' (the entrypoint)"
    assert (await call(pool, code.plain, "twice", 1)).result == 2


async def test_a_warm_worker_keeps_the_module_of_its_version(pool: WorkerPool, code: Code) -> None:
    first = (await call(pool, code.plain, "main")).result
    second = (await call(pool, code.plain, "main")).result
    assert second["calls"] == first["calls"] + 1
    assert second["uid"] not in (0, None)


async def test_the_job_env_is_the_handlers_environment_and_nothing_of_the_servers(
    pool: WorkerPool, code: Code, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"ROOST_TOKEN": "short-lived", "STRIPE_KEY": "declared secret", "HOME": "/elsewhere"}
    names = ["ROOST_TOKEN", "STRIPE_KEY", "ROOST_SECRET_KEY", "ROOST_DATA_DIR", "HOME"]
    seen = (await call(pool, code.plain, "environment", names, env=env)).result
    assert seen["ROOST_TOKEN"] == "short-lived"
    assert seen["STRIPE_KEY"] == "declared secret"
    assert seen["ROOST_SECRET_KEY"] is None
    assert seen["ROOST_DATA_DIR"] is None
    assert seen["HOME"] != "/elsewhere"  # the runtime's own variables stay its own
    later = (await call(pool, code.plain, "environment", ["STRIPE_KEY", "ROOST_TOKEN"])).result
    assert later == {"STRIPE_KEY": None, "ROOST_TOKEN": None}  # gone for the next call


async def test_what_a_handler_changes_in_its_environment_is_undone_for_the_next_call(
    pool: WorkerPool, code: Code
) -> None:
    """A warm worker sets only a call's own variables when the environment is as the last
    call left it: a handler that added, changed or removed one must not pass that on."""
    env = {"ROOST_TOKEN": "first", "ROOST_FUNCTION_NAME": "echo"}
    changes = {"LEFT_BEHIND": "x", "ROOST_FUNCTION_NAME": "forged", "HOME": None}
    await call(pool, code.plain, "change_environment", changes, env=env)
    names = ["LEFT_BEHIND", "ROOST_FUNCTION_NAME", "HOME", "ROOST_TOKEN"]
    env = {"ROOST_TOKEN": "second", "ROOST_FUNCTION_NAME": "echo"}
    for token in ("second", "third"):  # the repair, then a call on the fast path after it
        env["ROOST_TOKEN"] = token
        seen = (await call(pool, code.plain, "environment", names, env=env)).result
        assert seen["LEFT_BEHIND"] is None
        assert seen["ROOST_FUNCTION_NAME"] == "echo"
        assert seen["HOME"] is not None
        assert seen["ROOST_TOKEN"] == token


@pytest.mark.parametrize("client", ["sync", "async"])
async def test_a_function_reaches_the_roost_api(
    pool: WorkerPool, code: Code, api_server: RunningServer, client: str
) -> None:
    env = {"ROOST_API_URL": api_server.url}
    answer = (await call(pool, code.plain, "call_api", client, env=env, timeout=30)).result
    assert answer["status"] == "ok"


async def test_a_function_reaches_the_api_over_websockets(
    pool: WorkerPool, code: Code, api_server: RunningServer
) -> None:
    """The realtime connection and the RPC pool open their sockets as the HTTP client does
    inside the sandbox: through the runtime's Unix socket (bubblewrap) or door (fallback),
    where no TCP socket may be opened; and the worker stays warm (no thread left)."""
    env = {"ROOST_API_URL": api_server.url}
    run = await call(pool, code.plain, "call_over_websockets", env=env, timeout=30)
    assert run.result == ["ok", "ok"]
    replaced = pool.stats().replaced
    again = await call(pool, code.plain, "call_over_websockets", env=env, timeout=30)
    assert again.result == ["ok", "ok"]
    assert pool.stats().replaced == replaced


async def test_another_tenant_never_sees_the_private_tmp(pool: WorkerPool, code: Code) -> None:
    path = (await call(pool, code.plain, "leave_in_tmp", "acme's draft")).result
    assert (await call(pool, code.plain, "read_path", path)).result == "acme's draft"
    failure = (await call(pool, code.plain, "read_path", path, tenant="globex")).failure
    assert failure.message.startswith(("FileNotFoundError", "PermissionError"))


async def test_stopping_the_iteration_stops_the_call_and_replaces_the_worker(
    pool: WorkerPool, code: Code
) -> None:
    cancelled = pool.stats().replaced.get("cancelled", 0)
    events = pool.run(job(code.plain, "forever", stream=True))
    seen = [await anext(events) for _ in range(3)]
    await events.aclose()
    assert [event.value for event in seen if isinstance(event, Item)] == [0, 1, 2]
    assert pool.stats().replaced["cancelled"] == cancelled + 1
    await still_serves(pool, code)


@pytest.mark.parametrize(
    ("entrypoint", "death"), [("crash", "SIGSEGV)"), ("exit_worker", "exit code 3)")]
)
async def test_a_worker_that_dies_is_a_failure_and_is_replaced(
    pool: WorkerPool, code: Code, entrypoint: str, death: str
) -> None:
    failure = (await call(pool, code.hostile, entrypoint)).failure
    assert failure.status == "FAILURE"
    assert failure.message.startswith(f"the function's worker died ({death}")
    await still_serves(pool, code)


async def test_a_worker_that_dies_between_calls_is_replaced_before_a_call_meets_it(
    pool: WorkerPool, code: Code
) -> None:
    crashed = pool.stats().replaced.get("crashed", 0)
    assert (await call(pool, code.hostile, "die_when_idle", 0.2)).result == "dying soon"
    await wait_until(lambda: pool.stats().replaced.get("crashed", 0) == crashed + 1)
    await still_serves(pool, code)


async def test_a_worker_that_leaves_a_process_running_is_replaced_after_its_call(
    pool: WorkerPool, code: Code
) -> None:
    unclean = pool.stats().replaced.get("unclean", 0)
    assert (await call(pool, code.hostile, "leave_a_child")).result == "child left running"
    assert pool.stats().replaced["unclean"] == unclean + 1
    await still_serves(pool, code)


async def test_a_worker_that_leaves_a_thread_running_is_replaced_after_its_call(
    pool: WorkerPool, code: Code
) -> None:
    """A thread left behind would outlive the call's timeout with its token and see the next
    calls' environment."""
    unclean = pool.stats().replaced.get("unclean", 0)
    assert (await call(pool, code.hostile, "leave_a_thread")).result == "thread left running"
    assert pool.stats().replaced["unclean"] == unclean + 1
    await still_serves(pool, code)


async def test_the_event_loops_own_threads_leave_the_worker_warm(
    pool: WorkerPool, code: Code
) -> None:
    unclean = pool.stats().replaced.get("unclean", 0)
    for _ in range(2):
        assert (await call(pool, code.hostile, "use_a_thread", [1, 2])).result == 3
    assert pool.stats().replaced.get("unclean", 0) == unclean


async def test_streams_nobody_reads_are_stopped_at_their_timeout(
    pool: WorkerPool, code: Code
) -> None:
    """A run's deadline holds while its reader reads nothing: its worker is killed then, not
    when the reader comes back, and its turn goes to the next call (here the pool's two
    readers keep their runs open and another call is served)."""
    timeouts = pool.stats().replaced.get("timeout", 0)
    streams = [  # a tenant each: a tenant may hold only its share of the places
        pool.run(
            job(code.hostile, "yield_then_sleep", 60, stream=True, timeout=0.5, tenant=f"t{n}")
        )
        for n in range(pool.size)
    ]
    for events in streams:
        assert await anext(events) == Item("started")
    await wait_until(lambda: pool.stats().replaced.get("timeout", 0) == timeouts + pool.size)
    await still_serves(pool, code)
    for events in streams:
        rest = [event async for event in events]
        assert isinstance(rest[-1], Failed), rest
        assert rest[-1].status == "TIMEOUT"


async def test_a_dead_workers_message_holds_no_output_of_an_earlier_call(
    pool: WorkerPool, code: Code
) -> None:
    """The tail of raw output a dying worker's message shows is its last call's only: an
    earlier call may have been another caller's."""
    earlier = f"earlier-callers-{secrets.token_hex(4)}"
    assert (await call(pool, code.hostile, "say_raw", earlier)).result == "said"
    failure = (await call(pool, code.hostile, "exit_worker")).failure
    assert failure.message.startswith("the function's worker died (exit code 3)")
    assert earlier not in failure.message
    await still_serves(pool, code)


async def test_a_replaced_worker_leaves_no_pipe_open_in_the_server(
    pool: WorkerPool, code: Code
) -> None:
    await wait_until(lambda: pool.stats().starting == 0)
    before = _pipes()
    assert (await call(pool, code.hostile, "exit_worker")).failure.status == "FAILURE"
    await wait_until(lambda: pool.stats().starting == 0)  # a fresh worker took its place
    assert _pipes() == before


def _pipes() -> int:
    """Pipes this process holds open (each worker holds three of them)."""
    links = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
        except FileNotFoundError:
            continue  # closed while we looked
    return sum(link.startswith("pipe:") for link in links)


async def test_stats_say_how_workers_are_isolated(pool: WorkerPool, code: Code) -> None:
    await call(pool, code.plain, "twice", 1)
    stats = pool.stats()
    expected = "bubblewrap" if "bubblewrap" in pool.isolation else "landlock"
    assert stats.isolation == pool.isolation
    assert stats.isolation.startswith(expected)
    assert stats.isolation.endswith("seccomp+setuid")
    assert stats.size == 2
    assert stats.runs > 0
    assert stats.busy + stats.warm + stats.spare + stats.starting == 2


def test_settings_choose_the_pool_and_refuse_an_unknown_isolation(tmp_path: Path) -> None:
    settings = load_settings(functions_pool_size=3, functions_isolation="fallback")
    pool = WorkerPool.from_settings(settings, run_dir=tmp_path, api_url="http://127.0.0.1:1")
    assert (pool.size, pool.isolation) == (3, "fallback")
    with pytest.raises(ConfigurationError, match="ROOST_FUNCTIONS_ISOLATION"):
        load_settings(functions_isolation="none")


async def test_a_finished_event_carries_the_duration(pool: WorkerPool, code: Code) -> None:
    last = (await call(pool, code.plain, "twice", 2)).last
    assert isinstance(last, Finished)
    assert last.duration_ms >= 0


@pytest.mark.skipif(os.geteuid() != 0, reason="the uid switch needs root")
async def test_a_pool_refuses_uids_that_processes_already_run_as(pool: WorkerPool) -> None:
    await wait_until(lambda: pool.stats().starting == 0)  # this module's pool holds its uids
    taken = pool.stats()
    twin = WorkerPool(
        size=2, run_dir=pool.run_dir / "twin", api_url="http://127.0.0.1:1", uid_base=pool.uid_base
    )
    with pytest.raises(ConfigurationError, match="give each server on a host its own uid range"):
        await twin.start()
    assert pool.stats().started == taken.started


@pytest.mark.skipif(os.geteuid() != 0, reason="the uid switch needs root")
async def test_the_fallback_refuses_a_run_dir_its_workers_cannot_reach(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    pool = WorkerPool(
        size=1, run_dir=private / "run", api_url="http://127.0.0.1:1", isolation="fallback"
    )
    with pytest.raises(ConfigurationError, match="which other users cannot enter"):
        await pool.start()


async def test_a_missing_code_folder_is_a_failure_naming_it(pool: WorkerPool, code: Code) -> None:
    failure = (await call(pool, code.plain.parent / "9", "main")).failure
    assert failure.message == f"the function's code folder is missing: {code.plain.parent / '9'}"
    await still_serves(pool, code)


async def test_a_pool_started_in_the_background_makes_its_first_call_wait_for_it(
    code: Code, api_server: RunningServer
) -> None:
    pool = _one_worker_pool(api_server)
    run_dir = pool.run_dir
    pool.start_soon()
    try:
        assert pool.stats().starting == 1  # nothing started yet: the start runs beside us
        assert (await call(pool, code.plain, "twice", 21)).result == 42
        assert await pool.ready()
        assert (pool.failure, pool.stats().spare + pool.stats().warm) == (None, 1)
    finally:
        await pool.close()
        shutil.rmtree(run_dir)


async def test_a_pool_that_cannot_start_refuses_calls_with_the_reason(
    code: Code, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    pool = WorkerPool(size=1, run_dir=blocker / "run", api_url="http://127.0.0.1:1")
    pool.start_soon()
    try:
        with pytest.raises(ServiceUnavailableError, match="could not start") as refused:
            await call(pool, code.plain, "twice", 21)
        assert refused.value.code == "functions_unavailable"
        assert not await pool.ready()
        assert pool.failure is not None
        assert "NotADirectoryError" in pool.failure
        with pytest.raises(ServiceUnavailableError, match="NotADirectoryError"):
            pool.stats()  # what health shows
    finally:
        await pool.close()


async def test_closing_a_pool_while_it_starts_stops_the_start(
    code: Code, api_server: RunningServer
) -> None:
    pool = _one_worker_pool(api_server)
    run_dir = pool.run_dir
    pool.start_soon()
    await asyncio.sleep(0)  # under way
    await pool.close()
    shutil.rmtree(run_dir)
    assert pool.stats().busy + pool.stats().warm + pool.stats().spare == 0
    with pytest.raises(RuntimeError, match="closed"):
        await call(pool, code.plain, "twice", 21)


async def test_a_worker_that_cannot_be_restarted_is_retried_and_calls_are_told_why(
    code: Code, api_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool_module, "RESTART_PAUSE", 0.01)
    monkeypatch.setattr(pool_module, "RECOVER_PAUSE", 0.2)
    pool = _one_worker_pool(api_server)
    run_dir = pool.run_dir
    await pool.start()
    try:
        pool._start_timeout = 0.000_001  # no worker reports ready that soon: every start fails
        assert (await call(pool, code.hostile, "exit_worker")).failure.status == "FAILURE"
        await wait_until(lambda: pool.stats().down == 1 and pool.stats().starting == 0)
        failure = (await call(pool, code.plain, "twice", 21)).failure
        assert "1 of the 1 function workers could not be restarted" in failure.message
        assert "did not report ready" in failure.message
        pool._start_timeout = 30.0  # the host recovers: so does the place, unasked
        await wait_until(lambda: pool.stats().down == 0 and pool.stats().spare == 1, seconds=30)
        assert (await call(pool, code.plain, "twice", 21)).result == 42
    finally:
        await pool.close()
        shutil.rmtree(run_dir)


def _one_worker_pool(api_server: RunningServer) -> WorkerPool:
    """A pool of one fallback worker of its own (run dir and uids), not started."""
    return WorkerPool(
        size=1,
        run_dir=public_folder(),
        api_url=api_server.url,
        isolation="fallback",
        uid_base=secrets.randbelow(1000) * 1000 + 2_000_000,
    )
