"""Server replicas as separate processes (`python -m roost.cli serve`) sharing PostgreSQL and
Redis, as a scaled-out deployment runs them, and `roost worker` processes beside them;
`serve` and `start_worker` start one such process on any backend."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import (
    ADMIN_PASSWORD,
    REDIS_URL,
    SERVER_POSTGRES_URL,
    ensure_server_role,
    free_port,
)


@dataclass
class Replica:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """SIGKILL: the replica dies mid-work, as a crashed machine would."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


class Cluster:
    """Replicas of one deployment: one schema prefix, one signing key, one Redis."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.prefix = f"rt{secrets.token_hex(4)}"
        self.secret = secrets.token_urlsafe(40)
        self.replicas: list[Replica] = []
        self.workers: list[Replica] = []

    def start(self, **env: str) -> Replica:
        """One more replica (`env`: more of its ROOST_* variables)."""
        replica = serve(self.workdir, f"replica{len(self.replicas)}", {**self.env(), **env})
        self.replicas.append(replica)
        return replica

    def start_worker(self, api_url: str, **env: str) -> Replica:
        """A `roost worker` of the deployment whose functions call the API at `api_url`."""
        name = f"worker{len(self.workers)}"
        worker = start_worker(self.workdir, name, {**self.env(), **env}, api_url)
        self.workers.append(worker)
        return worker

    def env(self) -> dict[str, str]:
        ensure_server_role()
        return {
            "ROOST_DATABASE_URL": SERVER_POSTGRES_URL,
            "ROOST_PG_SCHEMA_PREFIX": self.prefix,
            "ROOST_REDIS_URL": REDIS_URL,
            "ROOST_SECRET_KEY": self.secret,
            "ROOST_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "ROOST_AUTH_CACHE_SECONDS": "30",  # revocations must travel on the bus, not expire
            "ROOST_STORAGE_URL": f"file://{self.workdir / 'files'}",  # one store, as S3 would be
            "ROOST_FUNCTIONS_QUEUE": self.prefix,  # tests share one Redis
            "ROOST_FUNCTIONS_ENABLED": "false",  # warm workers cost processes: asked for
        }

    def stop(self) -> None:
        for process in (*self.workers, *self.replicas):
            process.stop()


def serve(workdir: Path, name: str, env: dict[str, str]) -> Replica:
    """`roost serve` on a free port with `env` over this environment (data in
    `workdir/<name>` unless `env` names a ROOST_DATA_DIR), once its health answers. A port
    taken by another process between choosing and binding it is chosen again."""
    for _ in range(2):
        try:
            return _serve_once(workdir, name, env)
        except _PortTaken:
            pass
    return _serve_once(workdir, name, env)


class _PortTaken(RuntimeError):
    """The server could not listen on the port chosen for it."""


def _serve_once(workdir: Path, name: str, env: dict[str, str]) -> Replica:
    port = free_port()
    data_dir = env.get("ROOST_DATA_DIR", str(workdir / f"data-{name}"))
    command = [sys.executable, "-m", "roost.cli", "serve", "--port", str(port)]
    command += ["--data-dir", data_dir, "--log-level", "warning"]
    url = f"http://127.0.0.1:{port}"
    # its functions call it back here, whatever this process's environment holds
    env = {**env, "ROOST_FUNCTIONS_API_URL": url}
    replica = _launch(workdir, name, command, env, url)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if replica.process.poll() is not None:
            log = replica.log.read_text()
            if f"{port}): address already in use" in log:
                raise _PortTaken(log)
            raise RuntimeError(f"{name} exited:\n{log}")
        try:
            if httpx.get(replica.url + "/api/v1/health").status_code == 200:
                return replica
        except httpx.TransportError:
            time.sleep(0.05)
    replica.stop()  # not left running behind the error (a ResourceWarning in later tests)
    raise RuntimeError(f"{name} did not answer:\n{replica.log.read_text()}")


def start_worker(workdir: Path, name: str, env: dict[str, str], api_url: str) -> Replica:
    """`roost worker` with `env` over this environment, once it says it runs."""
    command = [sys.executable, "-m", "roost.cli", "worker", "--api-url", api_url]
    worker = _launch(workdir, name, command, env, api_url)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            raise RuntimeError(f"{name} exited:\n{worker.log.read_text()}")
        if b"Roost worker" in worker.log.read_bytes():
            return worker
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not start:\n{worker.log.read_text()}")


def _launch(workdir: Path, name: str, command: list[str], env: dict[str, str], url: str) -> Replica:
    log = workdir / f"{name}.log"
    # each process's sandboxes run under uids of their own (a pool refuses uids in use)
    uids = str(3_000_000 + secrets.randbelow(1_000_000) * 16)
    env = {"ROOST_FUNCTIONS_UID_BASE": uids, "ROOST_FUNCTIONS_POOL_SIZE": "2", **env}
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603
            command, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )
    return Replica(url, process, log)
