"""Hostile functions against the sandbox, under each isolation: every attempt ends as a
FAILURE or TIMEOUT with a clear message, and a normal call right after it succeeds."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from roost.functions.pool import WorkerPool
from tests.functions.conftest import (
    MAX_OUTPUT,
    MEMORY_MB,
    TMP_BYTES,
    Code,
    call,
    public_folder,
    still_serves,
)

pytestmark = pytest.mark.anyio


def _escaped() -> bool:
    return os.path.exists("/escaped") or os.path.exists("/usr/lib/escaped")


@pytest.fixture(scope="module")
def datagram_listener() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket file any uid may send to (the host's /dev/log is one such)."""
    folder = public_folder()
    path = str(folder / "log.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(path)
    os.chmod(path, 0o777)  # noqa: S103 - only the sandbox may stand in the way
    receiver.setblocking(False)
    yield receiver, path
    receiver.close()
    shutil.rmtree(folder)


@pytest.fixture(scope="module")
def listener() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A TCP and a UDP socket on loopback that would take whatever a function sent."""
    tcp = socket.create_server(("127.0.0.1", 0))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.setblocking(False)
    yield tcp, udp
    tcp.close()
    udp.close()


@pytest.mark.parametrize("path", ["/etc/shadow", "/proc/1/environ"])
async def test_host_secrets_cannot_be_read(pool: WorkerPool, code: Code, path: str) -> None:
    failure = (await call(pool, code.hostile, "read_file", path)).failure
    assert failure.status == "FAILURE"
    assert failure.message.startswith(("PermissionError", "FileNotFoundError"))
    await still_serves(pool, code)


async def test_the_servers_data_dir_cannot_be_read(pool: WorkerPool, code: Code) -> None:
    database = code.data_dir / "roost.db"
    assert database.read_text() == "every tenant's records"  # readable by anyone else
    failure = (await call(pool, code.hostile, "read_file", str(database))).failure
    assert failure.message.startswith(("PermissionError", "FileNotFoundError"))
    await still_serves(pool, code)


async def test_the_servers_own_process_cannot_be_read(pool: WorkerPool, code: Code) -> None:
    failure = (await call(pool, code.hostile, "read_file", f"/proc/{os.getpid()}/environ")).failure
    assert failure.message.startswith(("PermissionError", "FileNotFoundError"))
    await still_serves(pool, code)


async def test_a_tcp_connection_out_fails(
    pool: WorkerPool, code: Code, listener: tuple[socket.socket, socket.socket]
) -> None:
    port = listener[0].getsockname()[1]
    failure = (await call(pool, code.hostile, "tcp_connect", ["127.0.0.1", port])).failure
    assert failure.message.startswith("PermissionError"), failure.message
    failure = (await call(pool, code.hostile, "tcp_connect", ["1.1.1.1", 443])).failure
    assert failure.message.startswith("PermissionError"), failure.message
    await still_serves(pool, code)


async def test_a_udp_send_fails(
    pool: WorkerPool, code: Code, listener: tuple[socket.socket, socket.socket]
) -> None:
    port = listener[1].getsockname()[1]
    failure = (await call(pool, code.hostile, "udp_send", ["127.0.0.1", port])).failure
    assert failure.message.startswith("PermissionError"), failure.message
    with pytest.raises(BlockingIOError):
        listener[1].recv(100)  # nothing arrived
    await still_serves(pool, code)


async def test_a_local_unix_socket_cannot_be_reached(pool: WorkerPool, code: Code) -> None:
    path = "/var/run/postgresql/.s.PGSQL.5432"  # the host's PostgreSQL, trust auth
    failure = (await call(pool, code.hostile, "unix_connect", path)).failure
    assert failure.message.startswith(("PermissionError", "FileNotFoundError")), failure.message
    await still_serves(pool, code)


@pytest.mark.parametrize("entrypoint", ["datagram_to", "datagram_pair_to"])
async def test_no_datagram_reaches_a_socket_file_of_the_host(
    pool: WorkerPool, code: Code, datagram_listener: tuple[socket.socket, str], entrypoint: str
) -> None:
    receiver, path = datagram_listener
    failure = (await call(pool, code.hostile, entrypoint, path)).failure
    assert failure.message.startswith(("PermissionError", "FileNotFoundError")), failure.message
    with pytest.raises(BlockingIOError):
        receiver.recv(100)  # nothing arrived
    await still_serves(pool, code)


async def test_memory_that_would_outlive_the_worker_or_its_limits_is_refused(
    pool: WorkerPool, code: Code
) -> None:
    """System V and POSIX IPC objects stay after their maker dies (in the host's IPC
    namespace under the fallback); a memory file is tmpfs memory no limit counts."""
    made = (await call(pool, code.hostile, "ipc")).result
    assert made == dict.fromkeys(["shmget", "msgget", "semget", "mq_open", "memfd_create"], -1)
    await still_serves(pool, code)


async def test_the_private_tmp_is_bounded_as_a_whole_not_per_file(
    pool: WorkerPool, code: Code
) -> None:
    each = TMP_BYTES * 3 // 4  # each file fits, two do not
    failure = (await call(pool, code.hostile, "fill_tmp", {"files": 2, "each": each})).failure
    assert "No space left on device" in failure.message, failure.message
    await still_serves(pool, code)


async def test_a_fork_bomb_runs_into_the_process_limit(pool: WorkerPool, code: Code) -> None:
    failure = (await call(pool, code.hostile, "fork_bomb", 1000)).failure
    assert failure.status == "FAILURE"
    assert failure.message == (
        "BlockingIOError: [Errno 11] Resource temporarily unavailable "
        "(the limit of 16 processes and threads was reached)"
    )
    await still_serves(pool, code)


async def test_allocating_past_the_memory_limit_fails(pool: WorkerPool, code: Code) -> None:
    failure = (await call(pool, code.hostile, "allocate", 4 * MEMORY_MB)).failure
    assert failure.message == f"the function ran out of memory (its limit is {MEMORY_MB} MB)"
    await still_serves(pool, code)


async def test_spinning_forever_times_out(pool: WorkerPool, code: Code) -> None:
    run = await call(pool, code.hostile, "spin", timeout=0.5)
    assert run.failure.status == "TIMEOUT"
    assert run.failure.message == "the function ran past its timeout of 0.5 s and was stopped"
    await still_serves(pool, code)


async def test_printing_a_gigabyte_hits_the_output_limit(pool: WorkerPool, code: Code) -> None:
    run = await call(pool, code.hostile, "print_a_lot", 1024)
    assert run.failure.message.startswith(f"the run sent more than {MAX_OUTPUT} bytes of output")
    assert sum(len(log.line) for log in run.logs) <= MAX_OUTPUT
    await still_serves(pool, code)


async def test_writing_past_the_runtime_to_stdout_hits_the_output_limit_too(
    pool: WorkerPool, code: Code
) -> None:
    run = await call(pool, code.hostile, "write_to_fd", 1024)
    assert run.failure.message.startswith(f"the run sent more than {MAX_OUTPUT} bytes of output")
    await still_serves(pool, code)


async def test_another_functions_module_cannot_be_imported(pool: WorkerPool, code: Code) -> None:
    assert (await call(pool, code.other, "secret_b:main")).result == "other-tenant-secret"
    copies = [str(path.parent) for path in _copies_of(pool, "secret_b.py")]
    assert copies  # the other function's worker holds a copy of its code
    for folder in [str(code.other), *copies]:
        params = [folder, "secret_b"]
        failure = (await call(pool, code.hostile, "import_from", params, tenant="globex")).failure
        assert failure.message == "ModuleNotFoundError: No module named 'secret_b'"
    await still_serves(pool, code)


async def test_a_symlink_in_the_code_does_not_reach_the_host(pool: WorkerPool, code: Code) -> None:
    version = _version_with_a_link(code)
    failure = (await call(pool, version, "read_file", "leak")).failure
    assert failure.message.startswith("FileNotFoundError")
    await still_serves(pool, code)


def _copies_of(pool: WorkerPool, name: str) -> list[Path]:
    return list((pool.run_dir / "slots").glob(f"*/code/{name}"))


def _version_with_a_link(code: Code) -> Path:
    version = code.hostile.parent / "2"
    if not version.exists():
        shutil.copytree(code.hostile, version)
        (version / "leak").symlink_to(code.data_dir / "roost.db")
    return version


@pytest.mark.parametrize("where", ["code", "root", "usr", "dev"])
async def test_nothing_outside_tmp_can_be_written(pool: WorkerPool, code: Code, where: str) -> None:
    inside_code = "/function" if "bubblewrap" in pool.isolation else None
    paths = {
        "code": f"{inside_code or pool.run_dir / 'slots' / '0' / 'code'}/main.py",
        "root": "/escaped",
        "usr": "/usr/lib/escaped",
        "dev": "/dev/shm/escaped",
    }
    failure = (await call(pool, code.hostile, "write_file", paths[where])).failure
    assert failure.message.startswith(("PermissionError", "OSError", "FileNotFoundError"))
    assert not _escaped()
    await still_serves(pool, code)
