"""Server replicas as separate processes (`python -m roost.cli serve`) sharing PostgreSQL and
Redis, as a scaled-out deployment runs them."""

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

    def start(self) -> Replica:
        ensure_server_role()
        port, n = free_port(), len(self.replicas)
        env = {
            **os.environ,
            "ROOST_DATABASE_URL": SERVER_POSTGRES_URL,
            "ROOST_PG_SCHEMA_PREFIX": self.prefix,
            "ROOST_REDIS_URL": REDIS_URL,
            "ROOST_SECRET_KEY": self.secret,
            "ROOST_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "ROOST_AUTH_CACHE_SECONDS": "30",  # revocations must travel on the bus, not expire
        }
        log = self.workdir / f"replica{n}.log"
        command = [sys.executable, "-m", "roost.cli", "serve", "--port", str(port)]
        command += ["--data-dir", str(self.workdir / f"data{n}"), "--log-level", "warning"]
        with log.open("wb") as out:
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
        replica = Replica(f"http://127.0.0.1:{port}", process, log)
        self.replicas.append(replica)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"replica {n} exited:\n{log.read_text()}")
            try:
                if httpx.get(replica.url + "/api/v1/health").status_code == 200:
                    return replica
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"replica {n} did not answer:\n{log.read_text()}")

    def stop(self) -> None:
        for replica in self.replicas:
            replica.stop()
