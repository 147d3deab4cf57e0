"""`roost storage`: files of a running server, with progress bars for transfers."""

from __future__ import annotations

from pathlib import Path
from typing import IO, Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TransferSpeedColumn
from rich.table import Table

from roost.cli.remote import ApiKey, ApiUrl, Tenant, console, remote_client, reporting_errors

app = typer.Typer(
    help="Upload, download, list and delete files on a running server.", no_args_is_help=True
)


def _progress() -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        transient=False,
    )


class _Counted:
    """A file whose reads move a progress bar."""

    def __init__(self, handle: IO[bytes], progress: Progress, task: TaskID) -> None:
        self._handle, self._progress, self._task = handle, progress, task

    def read(self, size: int = -1) -> bytes:
        chunk = self._handle.read(size)
        self._progress.advance(self._task, len(chunk))
        return chunk


@app.command()
def upload(
    bucket: str,
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    name: Annotated[str | None, typer.Option(help="Name in the bucket.")] = None,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
    tenant: Tenant = None,
) -> None:
    """Upload a file (streamed, with a progress bar). Without a credential, or with one the
    server refuses, nothing of the file is sent."""
    with reporting_errors(), remote_client(api_url, api_key, tenant, required=True) as client:
        client.auth.whoami()  # a refused key is known before the first byte goes
        with _progress() as progress, path.open("rb") as handle:
            task = progress.add_task(f"upload {path.name}", total=path.stat().st_size)
            stored = client.storage.from_(bucket).upload(
                [{"file": _Counted(handle, progress, task), "name": name or path.name}]
            )[0]
    console.print(
        f"[green]stored[/] {bucket}/{stored['name']} ({stored['size']} bytes, "
        f"sha256 {stored['sha256'][:12]}...)"
    )


@app.command()
def download(
    bucket: str,
    name: str,
    destination: Annotated[Path | None, typer.Argument()] = None,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
    tenant: Tenant = None,
) -> None:
    """Download a file (streamed to a temporary file, then renamed; with a progress bar)."""
    target = destination or Path(Path(name).name)
    with (
        reporting_errors(),
        remote_client(api_url, api_key, tenant) as client,
        _progress() as progress,
    ):
        size = client.call("storage.stat", {"bucket": bucket, "name": name}, idempotent=True)[
            "size"
        ]
        task = progress.add_task(f"download {name}", total=size)
        temporary = target.with_name(f".{target.name}.part")
        with temporary.open("wb") as handle:
            for chunk in client.storage.from_(bucket).stream(name):
                handle.write(chunk)
                progress.advance(task, len(chunk))
        temporary.replace(target)
    console.print(f"[green]saved[/] {target}")


@app.command("ls")
def list_files(
    bucket: str,
    prefix: Annotated[str, typer.Option(help="Only names starting so.")] = "",
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
    tenant: Tenant = None,
) -> None:
    """List the files of a bucket."""
    with reporting_errors(), remote_client(api_url, api_key, tenant) as client:
        files = client.storage.from_(bucket).list(prefix, limit=1000)
    table = Table("name", "size", "type", "updated")
    for item in files:
        table.add_row(item["name"], str(item["size"]), item["content_type"], item["updated_at"])
    console.print(table)


@app.command("rm")
def remove(
    bucket: str,
    names: list[str],
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
    tenant: Tenant = None,
) -> None:
    """Delete files."""
    with reporting_errors(), remote_client(api_url, api_key, tenant) as client:
        count = client.storage.from_(bucket).delete(names)
    console.print(f"deleted {count} of {len(names)}")
