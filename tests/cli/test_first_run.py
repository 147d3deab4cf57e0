"""What a newcomer sees from `roost` in a shell: notes on first start, and one line (never a
traceback) for the usual mistakes. Run as a subprocess, as a shell runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import free_port

ROOST = [sys.executable, "-m", "roost.cli"]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [*ROOST, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        check=False,
    )


def test_serve_says_it_makes_a_data_folder_and_how_to_make_a_superuser(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    env = {**os.environ, "ROOST_SECRET_KEY": "k" * 40, "COLUMNS": "200"}
    env.pop("ROOST_ADMIN_PASSWORD", None)
    command = [*ROOST, "serve", "--port", str(free_port()), "--data-dir", str(data)]
    command += ["--log-level", "warning"]
    process = subprocess.Popen(  # noqa: S603
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "API docs" in line:
                break
    finally:
        process.terminate()
        process.communicate(timeout=15)
    output = "".join(lines)
    assert f"creating a new data folder at {data}" in output
    assert "no superuser yet" in output
    assert "roost admin create-user" in output
    assert "ROOST_ADMIN_PASSWORD" in output


def test_unreachable_postgresql_is_one_line(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://roost:pw@127.0.0.1:{port}/roost"
    result = _run("serve", "--data-dir", str(tmp_path), "--database-url", url)
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == (
        f"error: cannot reach the database at 127.0.0.1:{port} (ROOST_DATABASE_URL): is "
        "PostgreSQL running, and the URL right?"
    )
    assert result.stderr == ""


def test_a_missing_local_file_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.txt"
    result = _run("storage", "upload", "docs", str(missing), "--api-key", "rak_x")
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    assert "does not exist" in result.stdout + result.stderr


def test_a_missing_server_extra_is_one_line() -> None:
    hide = "import sys, runpy; sys.modules['uvicorn'] = None; "
    hide += "runpy.run_module('roost.cli', run_name='__main__')"
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", hide, "version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "roost: the Roost server is not installed (no module 'uvicorn'): "
        'pip install "roost[server]"'
    ]
