"""`roost backup FILE` / `roost restore FILE`: an online snapshot of the embedded default (a
data folder of SQLite databases and a file blob store), and its restoration.

The snapshot is a tar file. Each database file is copied with SQLite's online backup API
(`sqlite3.Connection.backup`), which reads one consistent state of the file while the server
goes on writing (WAL mode: writers are never blocked). The databases are copied first and every
other file after (blobs, keys, the mail outbox): a blob is written before the row that names
it is committed, so every file the copied rows name is there. Blobs written after the database
copies may come along too, unnamed by any row (they take room, nothing more).

PostgreSQL and S3 deployments are backed up with their own tools (pg_dump, bucket
versioning): the command says so rather than copy half of a deployment.
"""

from __future__ import annotations

import io
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
from pathlib import Path, PurePosixPath
from typing import Annotated

import typer

from roost.cli.serve import DATA_DIR_HELP
from roost.errors import ConfigurationError
from roost.settings import Settings

_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
_MANIFEST = "roost-backup.txt"


def embedded(settings: Settings) -> Path:
    """The data folder, if this deployment is the embedded default (else ConfigurationError)."""
    if settings.database_url and not settings.resolved_database_url.startswith("sqlite"):
        raise ConfigurationError(
            "roost backup copies the embedded default (SQLite and files); back PostgreSQL up "
            "with pg_dump"
        )
    if settings.storage_url and not settings.storage_url.startswith("file://"):
        raise ConfigurationError(
            "roost backup copies the embedded default; back an S3 bucket up with its own tools"
        )
    if settings.database_url or settings.storage_url:
        raise ConfigurationError(
            "roost backup copies the data folder of the embedded default; this deployment "
            "keeps its database or files elsewhere (ROOST_DATABASE_URL, ROOST_STORAGE_URL)"
        )
    return settings.data_dir


def back_up(data_dir: Path, target: Path) -> tuple[int, int]:
    """Write a snapshot of `data_dir` to `target` (via a temporary file, renamed at the end);
    returns (databases, other files) copied."""
    if not (data_dir / "roost.db").is_file():
        raise ConfigurationError(f"no Roost data folder at {data_dir} (no roost.db)")
    # the control database and one per tenant (`Database.sqlite_path_of`); a blob named *.db
    # elsewhere is a file like any other
    databases = [data_dir / "roost.db", *sorted((data_dir / "tenants").glob("*.db"))]
    databases = [path for path in databases if path.is_file()]
    partial = target.with_name(f".{target.name}.part")
    with tempfile.TemporaryDirectory() as scratch, tarfile.open(partial, "w:gz") as archive:
        for path in databases:
            copy = Path(scratch) / "copy.db"
            _sqlite_copy(path, copy)
            archive.add(copy, arcname=path.relative_to(data_dir).as_posix())
            copy.unlink()
        others = 0
        skipped = set(databases)
        for path in sorted(data_dir.rglob("*")):
            if path in skipped or not path.is_file() or path.name.endswith(_SQLITE_SIDE_FILES):
                continue
            if path.name.endswith(".db-journal") or ".part" in path.name:
                continue
            try:
                archive.add(path, arcname=path.relative_to(data_dir).as_posix())
            except FileNotFoundError:
                continue  # deleted since the walk saw it: it is not part of the snapshot
            others += 1
        manifest = f"roost backup\ncreated {time.time():.0f}\n".encode()
        info = tarfile.TarInfo(_MANIFEST)
        info.size = len(manifest)
        archive.addfile(info, io.BytesIO(manifest))
    os.chmod(partial, 0o600)  # it holds the keys
    partial.replace(target)
    return len(databases), others


def _sqlite_copy(source: Path, target: Path) -> None:
    """One consistent state of the SQLite database `source`, written to `target`."""
    with (
        sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30) as reading,
        sqlite3.connect(target) as writing,
    ):
        reading.backup(writing)  # all pages in one step: one read transaction, one state
    reading.close()
    writing.close()


def restore(archive_path: Path, data_dir: Path, *, replace: bool) -> int:
    """Unpack a snapshot into `data_dir`, which must be empty or absent unless `replace`
    (then its content is moved aside to `<data_dir>.before-restore-<time>`). Returns the
    files restored."""
    if not tarfile.is_tarfile(archive_path):
        raise ConfigurationError(f"{archive_path} is not a roost backup")
    with tarfile.open(archive_path, "r:*") as archive:
        names = archive.getnames()
        if _MANIFEST not in names:
            raise ConfigurationError(f"{archive_path} is not a roost backup")
        if data_dir.exists() and any(data_dir.iterdir()):
            if not replace:
                raise ConfigurationError(
                    f"{data_dir} is not empty: stop the server, then restore with --replace "
                    "(its content is moved aside, not deleted)"
                )
            aside = data_dir.with_name(f"{data_dir.name}.before-restore-{time.time():.0f}")
            shutil.move(data_dir, aside)
        data_dir.mkdir(parents=True, exist_ok=True)
        count = 0
        for member in archive.getmembers():
            if member.name == _MANIFEST:
                continue
            if not member.isfile() or _escapes(member.name):
                raise ConfigurationError(f"{archive_path} holds an unsafe entry {member.name!r}")
            # the 'data' filter refuses links, absolute paths and special files, and drops
            # set-uid bits (tarfile's own guard, PEP 706)
            archive.extract(member, data_dir, filter="data")
            count += 1
    for key in ("secret.key", "master.key"):
        if (data_dir / key).exists():
            os.chmod(data_dir / key, 0o600)
    return count


def _escapes(name: str) -> bool:
    path = PurePosixPath(name)
    return path.is_absolute() or ".." in path.parts


DataDir = Annotated[Path | None, typer.Option(help=DATA_DIR_HELP)]
