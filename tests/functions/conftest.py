"""A real worker pool per isolation mode, shared by a test module (a pool start costs a few
hundred milliseconds), in front of a real Roost server that the functions call back."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from roost.functions.pool import WorkerPool
from roost.functions.protocol import Event, Failed, Finished, Item, Job, Log
from tests.conftest import RunningServer, start_server
from tests.functions.handlers import HOSTILE, OTHER, PLAIN

MEMORY_MB = 64
MAX_OUTPUT = 256 * 1024
TMP_BYTES = 4 * 1024 * 1024


@dataclass
class Code:
    """Folders of deployed function versions, as the service would keep them."""

    plain: Path
    hostile: Path
    other: Path
    data_dir: Path  # stands in for the server's data dir: readable by anyone but a sandbox


@dataclass
class Run:
    """Everything a call yielded."""

    events: list[Event]

    @property
    def last(self) -> Finished | Failed:
        last = self.events[-1]
        assert isinstance(last, Finished | Failed), self.events
        return last

    @property
    def result(self) -> Any:
        assert isinstance(self.last, Finished), self.last
        return self.last.result

    @property
    def failure(self) -> Failed:
        assert isinstance(self.last, Failed), self.events
        return self.last

    @property
    def items(self) -> list[Any]:
        return [event.value for event in self.events if isinstance(event, Item)]

    @property
    def logs(self) -> list[Log]:
        return [event for event in self.events if isinstance(event, Log)]


def public_folder() -> Path:
    """A folder every uid can reach (pytest's own tmp is private to root): a sandboxed
    worker must be kept out by its sandbox, not by folder modes."""
    folder = Path(tempfile.mkdtemp(prefix="roost-fn-"))
    os.chmod(folder, 0o755)  # noqa: S103
    return folder


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def code() -> Iterator[Code]:
    root = public_folder()
    folders = {}
    for name, source, module in (
        ("plain", PLAIN, "main"),
        ("hostile", HOSTILE, "main"),
        ("other", OTHER, "secret_b"),
    ):
        folder = root / name / "1"
        folder.mkdir(parents=True)
        (folder / f"{module}.py").write_text(source)
        folders[name] = folder
    data_dir = root / "data"
    data_dir.mkdir(mode=0o755)
    (data_dir / "roost.db").write_text("every tenant's records")
    os.chmod(data_dir / "roost.db", 0o644)
    yield Code(folders["plain"], folders["hostile"], folders["other"], data_dir)
    shutil.rmtree(root)


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("roost-fn-api"))
    yield running
    running.stop()


def new_pool(run_dir: Path, api_url: str, isolation: str, *, size: int) -> WorkerPool:
    """A pool with the tests' limits, not started."""
    return WorkerPool(
        size=size,
        run_dir=run_dir,
        api_url=api_url,
        isolation=isolation,
        max_output_bytes=MAX_OUTPUT,
        max_processes=16,
        tmp_bytes=TMP_BYTES,
        max_file_bytes=TMP_BYTES,
        # uids of their own: other pools on this machine (other test runs) use the default
        uid_base=secrets.randbelow(1000) * 1000 + 2_000_000,
    )


@pytest.fixture(scope="module", params=["bubblewrap", "fallback"])
async def pool(
    request: pytest.FixtureRequest, api_server: RunningServer
) -> AsyncIterator[WorkerPool]:
    run_dir = public_folder()
    workers = new_pool(run_dir, api_server.url, request.param, size=2)
    await workers.start()
    yield workers
    await workers.close()
    shutil.rmtree(run_dir)


def job(
    folder: Path,
    entrypoint: str,
    params: Any = None,
    *,
    tenant: str = "acme",
    timeout: float = 10.0,
    stream: bool = False,
    env: dict[str, str] | None = None,
) -> Job:
    return Job(
        execution_id=secrets.token_hex(8),
        tenant=tenant,
        function=folder.parent.name,
        version=int(folder.name),
        code_dir=str(folder),
        entrypoint=entrypoint,
        params=params,
        user_data={"id": "user-1", "username": "ada", "roles": ["member"], "tenant": tenant},
        env=env or {"ROOST_TENANT": tenant, "ROOST_RUNTIME": "roost-functions"},
        timeout=timeout,
        memory_mb=MEMORY_MB,
        stream=stream,
    )


async def call(
    pool: WorkerPool, folder: Path, entrypoint: str, params: Any = None, **options: Any
) -> Run:
    """Run one call to its end."""
    return Run([event async for event in pool.run(job(folder, entrypoint, params, **options))])


async def still_serves(pool: WorkerPool, code: Code) -> None:
    """A normal call right after a hostile one succeeds."""
    run = await call(pool, code.hostile, "read_file", "/dev/null")
    assert run.result == b""
