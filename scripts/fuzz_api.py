"""Fuzz every operation of the OpenAPI document with schemathesis; print the server errors.

    python scripts/fuzz_api.py [--backend sqlite|postgresql] [--port N] [--max-examples 100]
                               [--seed 1] [--url URL --username U --password P]
                               [-- any other `schemathesis run` option]

Without `--url` it starts a server of its own (SQLite in a temporary directory, or PostgreSQL
at ROOST_TEST_POSTGRES_URL in a schema prefix of its own), signs in as its admin and fuzzes it
with an API key of every scope; with `--url` it fuzzes that server as the user given (use a
throwaway server: an admin's random calls change and delete things). The check is
`not_a_server_error`: the run fails on any 5xx, and schemathesis prints each with a curl line
that reproduces it. CI runs the short, fixed-seed form of this run in
tests/security/test_openapi_fuzz.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from roost.server import create_app
from roost.settings import load_settings

POSTGRES_URL = os.environ.get(
    "ROOST_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
ADMIN, PASSWORD = "admin", secrets.token_urlsafe(16)


def start_server(
    backend: str, port: int, data_dir: Path, prefix: str
) -> tuple[uvicorn.Server, threading.Thread]:
    """A server in a thread of this process, on 127.0.0.1:`port`."""
    values: dict[str, object] = {
        "data_dir": data_dir,
        "admin_username": ADMIN,
        "admin_password": PASSWORD,
        "secret_key": secrets.token_urlsafe(40),
    }
    if backend == "postgresql":
        values |= {"database_url": POSTGRES_URL, "pg_schema_prefix": prefix}
    config = uvicorn.Config(
        create_app(load_settings(**values)), host="127.0.0.1", port=port, log_level="error"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline:
            raise SystemExit("the server did not start")
        time.sleep(0.05)
    return server, thread


def drop_schemas(prefix: str) -> None:
    """The PostgreSQL schemas of a server this script started (its control plane, tenants)."""
    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            for row in await conn.fetch(
                "SELECT nspname FROM pg_namespace WHERE nspname = $1 OR nspname LIKE $2",
                prefix,
                prefix + "\\_%",
            ):
                await conn.execute(f'DROP SCHEMA IF EXISTS "{row["nspname"]}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


def api_key(url: str, username: str, password: str) -> str:
    """An API key of every scope the user holds (a key outlives a fuzzed logout)."""
    with httpx.Client(base_url=url, timeout=60) as http:
        login = http.post("/api/v1/auth/login", json={"username": username, "password": password})
        login.raise_for_status()
        headers = {"authorization": f"Bearer {login.json()['access']}"}
        created = http.post(
            "/api/v1/api_keys/create", json={"name": "fuzz", "scopes": ["*"]}, headers=headers
        )
        created.raise_for_status()
        return str(created.json()["key"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--port", type=int, default=0, help="for the server it starts")
    parser.add_argument("--url", help="fuzz this running server instead of starting one")
    parser.add_argument("--username", default=ADMIN)
    parser.add_argument("--password", default=PASSWORD)
    parser.add_argument("--max-examples", type=int, default=100, help="per operation")
    parser.add_argument("--seed", type=int, default=1)
    args, extra = parser.parse_known_args()
    with tempfile.TemporaryDirectory(prefix="fuzz-api-") as data_dir:
        started = None
        url = args.url
        prefix = f"fz{secrets.token_hex(4)}"
        if url is None:
            port = args.port or _free_port()
            started = start_server(args.backend, port, Path(data_dir), prefix)
            url = f"http://127.0.0.1:{port}"
        key = api_key(url, args.username, args.password)
        command = [
            *[sys.executable, "-m", "schemathesis.cli", "run", f"{url}/api/v1/openapi.json"],
            *["--header", f"Authorization: Api-Key {key}", "--checks", "not_a_server_error"],
            # the key's own tenant: another one is refused before the operation runs
            *["--header", "X-Roost-Tenant: default"],
            *["--max-examples", str(args.max_examples), "--seed", str(args.seed)],
            *["--request-timeout", "60", "--workers", "1"],
            *[arg for arg in extra if arg != "--"],
        ]
        try:
            # schemathesis keeps a cache in its working directory: the temporary one
            return subprocess.run(command, cwd=data_dir, check=False).returncode  # noqa: S603
        finally:
            if started is not None:
                server, thread = started
                server.should_exit = True
                thread.join(timeout=30)
                if args.backend == "postgresql":
                    drop_schemas(prefix)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())
