"""`roost backup` while writes go on, `roost restore` to the state of the snapshot, and
`roost migrate status`."""

from __future__ import annotations

import sqlite3
import tarfile
import threading
from pathlib import Path

from typer.testing import CliRunner

from roost import Client
from roost.cli.main import app
from tests.conftest import start_server

runner = CliRunner()


def _writer(url: str, stop: threading.Event, written: list[int]) -> None:
    """Documents 0, 1, 2, ... and a file per document, one after the other, until told."""
    with Client(api_url=url) as client:
        admin = client.auth.sign_in_with_password("admin", "admin-password-1")
        docs, files = admin.collection("notes"), admin.storage.from_("att")
        n = 0
        while not stop.is_set():
            files.upload([{"file": f"file {n}".encode(), "name": f"f{n}.txt"}])
            docs.set(f"n{n:05d}", {"n": n, "text": "x" * 200})
            written.append(n)
            n += 1


def test_backup_while_writing_restores_a_consistent_state(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    stop, written = threading.Event(), list[int]()
    with Client(api_url=server.url) as client:
        client.auth.sign_in_with_password("admin", "admin-password-1").storage.create_bucket("att")
    writer = threading.Thread(target=_writer, args=(server.url, stop, written))
    writer.start()
    try:
        while len(written) < 20:  # writes are under way before the snapshot starts
            writer.join(timeout=0.05)
            assert writer.is_alive()
        before = len(written)
        snapshot = tmp_path / "snap.tar.gz"
        made = runner.invoke(app, ["backup", str(snapshot), "--data-dir", str(tmp_path / "data")])
        assert made.exit_code == 0, made.output
        target = len(written) + 20
        while len(written) < target:  # and go on after it
            writer.join(timeout=0.05)
            assert writer.is_alive()
    finally:
        stop.set()
        writer.join(timeout=30)
        server.stop()
    assert snapshot.stat().st_mode & 0o077 == 0  # it holds the keys

    restored_dir = tmp_path / "restored"
    done = runner.invoke(app, ["restore", str(snapshot), "--data-dir", str(restored_dir)])
    assert done.exit_code == 0, done.output
    assert (restored_dir / "master.key").stat().st_mode & 0o077 == 0
    refused = runner.invoke(app, ["restore", str(snapshot), "--data-dir", str(restored_dir)])
    assert (refused.exit_code, "--replace" in refused.output) == (2, True)

    # the restored databases are those of the snapshot, page for page
    with tarfile.open(snapshot) as archive:
        archive.extract("tenants/default.db", tmp_path / "raw", filter="data")
    assert _dump(tmp_path / "raw" / "tenants" / "default.db") == _dump(
        restored_dir / "tenants" / "default.db"
    )

    again = start_server(restored_dir, admin_password=None)
    try:
        with Client(api_url=again.url) as client:
            admin = client.auth.sign_in_with_password("admin", "admin-password-1")
            numbers = sorted(row["n"] for row in admin.collection("notes").query().execute())
            # one state of the writer's sequence: every document up to some point, no gap
            assert numbers == list(range(len(numbers)))
            assert before <= len(numbers) < len(written)
            bucket = admin.storage.from_("att")
            for n in numbers:  # every document's file came along, whole
                assert bucket.download(f"f{n}.txt") == f"file {n}".encode()
    finally:
        again.stop()


def _dump(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        lines = list(db.iterdump())
    db.close()
    return lines


def test_backup_refuses_what_is_not_the_embedded_default(tmp_path: Path) -> None:
    url = "postgresql://roost@127.0.0.1:1/none"
    refused = runner.invoke(app, ["backup", str(tmp_path / "x"), "--data-dir", str(tmp_path)])
    assert refused.exit_code == 2  # no data folder there yet
    env = {"ROOST_DATABASE_URL": url}
    refused = runner.invoke(app, ["backup", str(tmp_path / "x")], env=env)
    assert (refused.exit_code, "pg_dump" in refused.output) == (2, True)
    not_ours = tmp_path / "not-a-backup.tar"
    with tarfile.open(not_ours, "w") as archive:
        archive.add(__file__, arcname="../escape.py")
    bad = runner.invoke(app, ["restore", str(not_ours), "--data-dir", str(tmp_path / "d")])
    assert (bad.exit_code, "not a roost backup" in bad.output) == (2, True)


def test_migrate_status_lists_steps_per_namespace(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    empty = runner.invoke(app, ["migrate", "status", "--data-dir", data])
    assert (empty.exit_code, "no database" in empty.output) == (2, True)
    server = start_server(tmp_path / "data")
    try:
        with Client(api_url=server.url) as client:
            admin = client.auth.sign_in_with_password("admin", "admin-password-1")
            admin.tenants.create("acme")
    finally:
        server.stop()
    shown = runner.invoke(app, ["migrate", "status", "--data-dir", data], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    lines = {line.split("│")[1].strip(): line for line in shown.output.splitlines() if "│" in line}
    assert set(lines) >= {"control", "default", "acme"}
    assert "behind" not in shown.output
