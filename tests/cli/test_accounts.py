"""`roost login` / `logout`, `roost keys list|revoke`, `roost users ...`, on a real server."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from roost import Client
from roost.cli.main import app
from roost.errors import AuthenticationError
from tests.conftest import RunningServer

runner = CliRunner()


def test_help_keeps_its_environment_hints() -> None:
    shown = runner.invoke(app, ["serve", "--help"], terminal_width=250, env={"COLUMNS": "250"})
    assert "[env: ROOST_DATA_DIR]" in shown.output
    assert "[env: ROOST_DATABASE_URL]" in shown.output
    for command in (
        ["login"],
        ["logout"],
        ["keys", "list"],
        ["users", "set-role"],
        ["backup"],
        ["export"],
        ["import"],
    ):
        assert runner.invoke(app, [*command, "--help"]).exit_code == 0


def test_login_keeps_a_private_key_per_server_and_logout_revokes_it(
    make_server: Callable[..., RunningServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_server()
    stored = tmp_path / "config" / "credentials.json"
    monkeypatch.setenv("ROOST_CREDENTIALS_FILE", str(stored))
    monkeypatch.delenv("ROOST_API_KEY", raising=False)
    url = ["--api-url", server.url]
    wrong = runner.invoke(app, ["login", *url, "--username", "admin"], input="nope-nope-nope\n")
    assert wrong.exit_code == 2
    assert not stored.exists()
    signed_in = runner.invoke(
        app, ["login", *url, "--username", "admin"], input="admin-password-1\n"
    )
    assert signed_in.exit_code == 0, signed_in.output
    assert "admin-password-1" not in signed_in.output  # the prompt hides it
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert "admin-password-1" not in stored.read_text()

    # the commands use the stored key for that server
    created = runner.invoke(app, ["users", "create", "bob", *url], input="bob-password-1\n" * 2)
    assert created.exit_code == 0, created.output
    with Client(api_url=server.url) as client:
        admin = client.auth.sign_in_with_password("admin", "admin-password-1")
        admin.roles.create("auditor", ["users:read"])
    given = runner.invoke(app, ["users", "set-role", "bob", "auditor", *url])
    assert (given.exit_code, "1 change" in given.output) == (0, True), given.output
    listed = runner.invoke(app, ["users", "ls", *url], terminal_width=250)
    assert "bob" in listed.output
    assert "auditor" in listed.output
    taken = runner.invoke(app, ["users", "set-role", "bob", "auditor", "--remove", *url])
    assert taken.exit_code == 0, taken.output
    assert runner.invoke(app, ["users", "rm", "bob", *url]).exit_code == 0
    assert "bob" not in runner.invoke(app, ["users", "ls", *url], terminal_width=250).output
    missing = runner.invoke(app, ["users", "rm", "bob", *url])
    assert missing.exit_code == 2

    keys = runner.invoke(app, ["keys", "list", *url], terminal_width=250)
    assert keys.exit_code == 0, keys.output
    assert "roost login on" in keys.output
    assert json.loads(stored.read_text())[server.url]["api_key"] not in keys.output

    out = runner.invoke(app, ["logout", *url])
    assert (out.exit_code, "signed out" in out.output) == (0, True), out.output
    again = runner.invoke(app, ["keys", "list", *url])
    assert (again.exit_code, "no credential" in again.output) == (2, True)
    assert json.loads(stored.read_text()) == {}


def test_keys_revoke_refuses_the_key_from_then_on(
    make_server: Callable[..., RunningServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_server()
    monkeypatch.delenv("ROOST_API_KEY", raising=False)
    with Client(api_url=server.url) as client:
        admin = client.auth.sign_in_with_password("admin", "admin-password-1")
        operator = admin.api_keys.create("operator")["key"]
        victim = admin.api_keys.create("victim")
    common = ["--api-url", server.url, "--api-key", operator]
    revoked = runner.invoke(app, ["keys", "revoke", victim["id"], *common])
    assert revoked.exit_code == 0, revoked.output
    with Client(api_url=server.url) as client, pytest.raises(AuthenticationError):
        client.auth.sign_in_with_token(victim["key"], "api_key").auth.whoami()
    unknown = runner.invoke(app, ["keys", "revoke", "no-such-key", *common])
    assert unknown.exit_code == 2


def test_upload_without_credentials_sends_nothing(
    silent_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server here never answers: a command that tried to send would hang, not fail."""
    monkeypatch.setenv("ROOST_CREDENTIALS_FILE", str(tmp_path / "none.json"))
    monkeypatch.delenv("ROOST_API_KEY", raising=False)
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(1024))
    url = f"http://127.0.0.1:{silent_port}"
    refused = runner.invoke(app, ["storage", "upload", "docs", str(source), "--api-url", url])
    assert refused.exit_code == 2
    assert "no credential" in refused.output
    assert "roost login" in refused.output
