"""The real Cerbos binary (npm package `cerbos`, 0.51.0) on loopback, for differential tests
and the benchmark. `scripts/ensure-cerbos` installs it into `.cerbos/` of the checkout."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _ports() -> range:
    """The loopback ports the binary may take: `ROOST_TEST_PORTS` ("47900-47999"), so that
    test runs side by side each keep to a range of their own; 47700-47799 by default."""
    low, _, high = os.environ.get("ROOST_TEST_PORTS", "47700-47799").partition("-")
    return range(int(low), int(high or low) + 1)


def find_binary() -> Path | None:
    """`ROOST_CERBOS_BIN`, else the copy `scripts/ensure-cerbos` installed, else `cerbos` on PATH."""
    configured = os.environ.get("ROOST_CERBOS_BIN")
    if configured:
        return Path(configured)
    for candidate in sorted(
        (ROOT / ".cerbos" / "node_modules" / "@cerbos").glob("cerbos-*/cerbos-*")
    ):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("cerbos")
    return Path(found) if found else None


def free_port() -> int:
    """A free port of the range, among those of this xdist worker only: two workers finding
    the same port free would start two binaries on it, and one would talk to the other's."""
    ports = _ports()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    mine = ports[int(worker) % workers :: workers] if worker.isdigit() else ports
    for port in mine:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1}")


class _PortTaken(RuntimeError):
    """Cerbos could not listen on the port chosen for it: another took it first."""


class Cerbos:
    """A Cerbos server over a temporary folder of policies; stop() removes both."""

    def __init__(
        self,
        binary: Path,
        policies: Iterable[dict[str, Any] | str],
        globals_: dict[str, Any] | None = None,
        *,
        schemas: dict[str, dict[str, Any]] | None = None,
        enforcement: str = "none",
    ) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="roost-cerbos-"))
        policy_dir = self.folder / "policies"
        policy_dir.mkdir()
        if schemas:
            (policy_dir / "_schemas").mkdir()
            for name, schema in schemas.items():
                (policy_dir / "_schemas" / name).write_text(json.dumps(schema))
        for index, policy in enumerate(policies):
            text = policy if isinstance(policy, str) else yaml.safe_dump(policy, sort_keys=False)
            (policy_dir / f"p{index:05d}.yaml").write_text(text)
        # the port is free when chosen, not always when Cerbos binds it (another test's
        # server or an outgoing connection may take it meanwhile): then another is tried
        for attempt in range(3):
            self._spawn(binary, policy_dir, globals_ or {}, enforcement)
            try:
                self._wait()
                return
            except _PortTaken:
                if attempt == 2:
                    self.stop()
                    raise

    def _spawn(
        self, binary: Path, policy_dir: Path, globals_: dict[str, Any], enforcement: str
    ) -> None:
        self.port = free_port()
        config = {
            "server": {
                "httpListenAddr": f"127.0.0.1:{self.port}",
                "grpcListenAddr": f"unix:{self.folder / 'grpc.sock'}",
            },
            "storage": {
                "driver": "disk",
                "disk": {"directory": str(policy_dir), "watchForChanges": False},
            },
            "audit": {"enabled": False},
            "telemetry": {"disabled": True},
            "engine": {"globals": globals_},
            "schema": {"enforcement": enforcement},
        }
        (self.folder / "config.yaml").write_text(yaml.safe_dump(config))
        self.log = (self.folder / "cerbos.log").open("wb")
        self.process = subprocess.Popen(  # noqa: S603 (our own binary and arguments)
            [str(binary), "server", f"--config={self.folder / 'config.yaml'}", "--log-level=error"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def _wait(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.folder / "cerbos.log").read_text()[-3000:]
                self.log.close()
                self.client.close()
                if "address already in use" in log:
                    raise _PortTaken("cerbos exited: " + log)
                self.stop()
                raise RuntimeError("cerbos exited: " + log)
            try:
                if self.client.get("/_cerbos/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("cerbos did not start in 30 s")

    def check(
        self,
        principal: dict[str, Any],
        resources: list[dict[str, Any]],
        aux_data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "requestId": "t",
            "includeMeta": True,
            "principal": principal,
            "resources": resources,
        }
        if aux_data:
            body["auxData"] = aux_data
        response = self.client.post("/api/check/resources", json=body)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def plan(
        self, principal: dict[str, Any], kind: str, action: str, **resource: Any
    ) -> dict[str, Any]:
        body = {
            "requestId": "t",
            "includeMeta": True,
            "principal": principal,
            "action": action,
            "resource": {"kind": kind, **resource},
        }
        response = self.client.post("/api/plan/resources", json=body)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)
