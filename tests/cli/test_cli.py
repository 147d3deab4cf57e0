"""The `roost` command, run on a real data dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from roost import Client, __version__
from roost.cli.main import app
from tests.conftest import start_server

runner = CliRunner()


def test_version_and_help() -> None:
    assert runner.invoke(app, ["version"]).stdout.strip() == __version__
    for command in (
        [],
        ["serve"],
        ["admin", "create-user"],
        ["keys", "create"],
        ["mail", "outbox"],
        ["policies", "push"],
        ["policies", "ls"],
        ["policies", "test"],
        ["worker"],
        ["functions", "deploy"],
        ["functions", "invoke"],
        ["functions", "logs"],
        ["functions", "ls"],
        ["triggers", "ls"],
        ["triggers", "create"],
        ["triggers", "rm"],
    ):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output


def test_create_user_then_key_then_use_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROOST_SECRET_KEY", "s" * 40)
    data = str(tmp_path)
    created = runner.invoke(
        app,
        [
            "admin",
            "create-user",
            "--username",
            "root",
            "--password",
            "root-password",
            "--data-dir",
            data,
        ],
    )
    assert created.exit_code == 0, created.output
    again = runner.invoke(
        app,
        [
            "admin",
            "create-user",
            "--username",
            "root",
            "--password",
            "root-password",
            "--data-dir",
            data,
        ],
    )
    assert "exists" in again.output
    keyed = runner.invoke(
        app,
        [
            "keys",
            "create",
            "--username",
            "root",
            "--name",
            "ci",
            "--scope",
            "api_keys:read",
            "--data-dir",
            data,
        ],
    )
    assert keyed.exit_code == 0, keyed.output
    key = keyed.stdout.strip().splitlines()[-1]
    assert key.startswith("rak_default_")
    server = start_server(tmp_path, secret_key="s" * 40, admin_password=None)
    try:
        with Client(api_url=server.url) as client:
            service = client.auth.sign_in_with_token(key, "api_key")
            assert service.auth.get_current_user()["username"] == "root"
            root = client.auth.sign_in_with_password("root", "root-password")
            assert root.auth.get_current_user()["is_superuser"]
    finally:
        server.stop()


def test_keys_for_unknown_user_fail_with_a_message(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["keys", "create", "--username", "ghost", "--name", "x", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "no user named 'ghost'" in result.output


def test_several_workers_without_redis_are_refused(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "--workers", "2", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "ROOST_REDIS_URL" in result.output


def test_short_password_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "admin",
            "create-user",
            "--username",
            "root",
            "--password",
            "short",
            "--data-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2
    assert "password" in result.output


def test_roost_serve_starts_the_platform(tmp_path: Path) -> None:
    """The README's start command: `roost serve` on the embedded default."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    from tests.conftest import free_port

    port = free_port()
    env = {**os.environ, "ROOST_ADMIN_PASSWORD": "serve-password", "ROOST_SECRET_KEY": "k" * 40}
    command = [
        sys.executable,
        "-m",
        "roost.cli",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(tmp_path / "data"),
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                health = httpx.get(f"{url}/api/v1/health")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            raise AssertionError("roost serve did not answer")
        assert health.json()["backends"]["sql"]["backend"] == "sqlite"
        with Client(api_url=url) as client:
            admin = client.auth.sign_in_with_password("admin", "serve-password")
            assert admin.auth.whoami()["scopes"] == ["*"]
        assert (tmp_path / "data" / "roost.db").exists()
        assert (tmp_path / "data" / "tenants" / "default.db").exists()
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0].decode()
    assert "Roost" in output


def test_storage_commands_move_files_with_a_progress_bar(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    try:
        with Client(api_url=server.url) as client:
            admin = client.auth.sign_in_with_password("admin", "admin-password-1")
            admin.storage.create_bucket("docs")
            key = admin.api_keys.create("cli")["key"]
        source = tmp_path / "report.txt"
        source.write_bytes(b"quarterly numbers\n" * 5000)
        common = ["--api-url", server.url, "--api-key", key]
        uploaded = runner.invoke(app, ["storage", "upload", "docs", str(source), *common])
        assert uploaded.exit_code == 0, uploaded.output
        assert "stored docs/report.txt" in uploaded.output
        listed = runner.invoke(app, ["storage", "ls", "docs", *common])
        assert "report.txt" in listed.output
        target = tmp_path / "back.txt"
        downloaded = runner.invoke(
            app, ["storage", "download", "docs", "report.txt", str(target), *common]
        )
        assert downloaded.exit_code == 0, downloaded.output
        assert target.read_bytes() == source.read_bytes()
        removed = runner.invoke(app, ["storage", "rm", "docs", "report.txt", *common])
        assert "deleted 1 of 1" in removed.output
        missing = runner.invoke(
            app, ["storage", "download", "docs", "report.txt", str(target), *common]
        )
        assert missing.exit_code == 2
        assert "no file" in missing.output
    finally:
        server.stop()


def test_mail_outbox_shows_what_the_server_kept(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    try:
        with Client(api_url=server.url) as client:
            admin = client.auth.sign_in_with_password("admin", "admin-password-1")
            admin.mail.send_welcome("ann@example.com", {"name": "Ann"})
            key = admin.api_keys.create("cli")["key"]
        common = ["--api-url", server.url, "--api-key", key]
        shown = runner.invoke(app, ["mail", "outbox", "--full", *common], terminal_width=200)
        assert shown.exit_code == 0, shown.output
        assert "Welcome, Ann" in shown.output
        assert "ann@example.com" in shown.output
        assert "your account is ready" in shown.output
        refused = runner.invoke(app, ["mail", "outbox", "--limit", "0", *common])
        assert refused.exit_code == 2
        assert "limit" in refused.output
    finally:
        server.stop()


HELLO = """import logging

def main(params, user_data):
    print("hello from", params["name"])
    return {"hi": params["name"]}
"""


def test_functions_commands_deploy_invoke_list_and_show_logs(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", functions_enabled=True)
    try:
        with Client(api_url=server.url) as client:
            admin = client.auth.sign_in_with_password("admin", "admin-password-1")
            key = admin.api_keys.create("cli")["key"]
        common = ["--api-url", server.url, "--api-key", key]
        source = tmp_path / "hello.py"
        source.write_text(HELLO)
        deployed = runner.invoke(app, ["functions", "deploy", str(source), *common])
        assert deployed.exit_code == 0, deployed.output
        assert "deployed hello version 1" in deployed.output
        folder = tmp_path / "shop"
        (folder / "handlers").mkdir(parents=True)
        (folder / "handlers" / "__init__.py").write_text("")
        (folder / "handlers" / "orders.py").write_text(
            "def total(params, user_data):\n    return sum(params)\n"
        )
        from_folder = runner.invoke(
            app,
            [
                "functions",
                "deploy",
                str(folder),
                "--name",
                "orders",
                "--entrypoint",
                "handlers.orders:total",
                *common,
            ],
        )
        assert from_folder.exit_code == 0, from_folder.output
        listed = runner.invoke(app, ["functions", "ls", *common], terminal_width=200)
        assert "hello" in listed.output
        assert "orders" in listed.output

        invoked = runner.invoke(
            app, ["functions", "invoke", "hello", "--params", '{"name": "Ada"}', *common]
        )
        assert invoked.exit_code == 0, invoked.output
        assert json.loads(invoked.stdout) == {"hi": "Ada"}
        queued = runner.invoke(
            app, ["functions", "invoke", "orders", "--params", "[1, 2]", "--async", *common]
        )
        assert queued.exit_code == 0, queued.output
        invocation = queued.stdout.strip()
        with Client(api_url=server.url) as client:
            result = client.auth.sign_in_with_token(key, "api_key").functions.get_result
            assert result(invocation)["data"]["status"] in ("PENDING", "STARTED", "SUCCESS")
        waited = runner.invoke(
            app,
            ["functions", "invoke", "orders", "--params", "[3, 4]", "--async", "--wait", *common],
        )
        assert (waited.exit_code, json.loads(waited.stdout)) == (0, 7)

        failed = runner.invoke(app, ["functions", "invoke", "orders", "--params", '"x"', *common])
        assert failed.exit_code == 1
        assert "TypeError" in failed.output
        assert "FAILURE" in failed.output
        bad = runner.invoke(app, ["functions", "invoke", "orders", "--params", "{", *common])
        assert (bad.exit_code, "--params is not JSON" in bad.output) == (2, True)
        missing = runner.invoke(app, ["functions", "invoke", "nothing", *common])
        assert (missing.exit_code, "no function named" in missing.output) == (2, True)

        logs = runner.invoke(app, ["functions", "logs", "hello", *common], terminal_width=200)
        assert logs.exit_code == 0, logs.output
        assert "hello from Ada" in logs.output
    finally:
        server.stop()


def test_functions_logs_follow_prints_new_lines(tmp_path: Path) -> None:
    import queue
    import subprocess
    import sys
    import threading

    server = start_server(tmp_path / "data", functions_enabled=True)
    follower: subprocess.Popen[str] | None = None
    try:
        with Client(api_url=server.url) as client:
            admin = client.auth.sign_in_with_password("admin", "admin-password-1")
            key = admin.api_keys.create("cli")["key"]
            admin.functions.deploy("hello", HELLO)
            admin.functions.execute("hello", {"name": "first"})
            command = [sys.executable, "-m", "roost.cli", "functions", "logs", "hello", "-f"]
            command += ["--api-url", server.url, "--api-key", key]
            follower = subprocess.Popen(  # noqa: S603
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            lines: queue.Queue[str] = queue.Queue()
            stdout = follower.stdout
            assert stdout is not None

            def read() -> None:
                for line in stdout:
                    lines.put(line)

            reader = threading.Thread(target=read)
            reader.start()

            def next_line_with(text: str) -> str:
                while True:
                    line = lines.get(timeout=30)
                    if text in line:
                        return line

            next_line_with("hello from first")
            execution = admin.functions.execute("hello", {"name": "second"})["invocation"]["id"]
            assert execution in next_line_with("hello from second")
    finally:
        if follower is not None:
            follower.terminate()
            follower.wait(timeout=10)
            reader.join(timeout=10)  # the pipe ends with the process
            assert follower.stdout is not None
            follower.stdout.close()
        server.stop()


def test_worker_refuses_to_start_where_functions_cannot_run(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["worker", "--data-dir", str(tmp_path), "--api-url", "ftp://nowhere"],
    )
    assert result.exit_code == 2
    assert "ROOST_FUNCTIONS_API_URL" in result.output


def test_triggers_commands_make_list_and_remove_a_trigger(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", webhook_allow="127.0.0.0/8")
    try:
        with Client(api_url=server.url) as client:
            admin = client.auth.sign_in_with_password("admin", "admin-password-1")
            key = admin.api_keys.create("cli")["key"]
        common = ["--api-url", server.url, "--api-key", key]
        source = '{"kind": "cron", "schedule": "@daily", "timezone": "Europe/Paris"}'
        made = runner.invoke(
            app,
            ["triggers", "create", "nightly", "--source", source, "--url", server.url, *common],
        )
        assert made.exit_code == 0, made.output
        assert "signing secret (shown once): whsec_" in made.output
        listed = runner.invoke(app, ["triggers", "ls", *common], terminal_width=200)
        assert "nightly" in listed.output
        assert "@daily" in listed.output
        both = runner.invoke(
            app,
            [
                "triggers",
                "create",
                "x",
                "--source",
                source,
                "--function",
                "f",
                "--url",
                server.url,
                *common,
            ],
        )
        assert both.exit_code == 2
        assert "give one of --function and --url" in both.output
        removed = runner.invoke(app, ["triggers", "rm", "nightly", *common])
        assert removed.exit_code == 0, removed.output
        assert "nightly" not in runner.invoke(app, ["triggers", "ls", *common]).output
    finally:
        server.stop()
