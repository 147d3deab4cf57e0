"""`roost functions`: deploy, invoke, list and watch the functions of a running server."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.markup import escape
from rich.table import Table

from roost.cli.remote import ApiKey, ApiUrl, Tenant, console, remote_client, reporting_errors
from roost.errors import FunctionExecutionError

if TYPE_CHECKING:
    from roost.client._sync.client import Client

app = typer.Typer(help="Deploy, invoke, list and follow functions.", no_args_is_help=True)

_FOLLOW_EVERY = 1.0  # seconds between looks for new log lines
_PAGE = 200


@app.command()
def deploy(
    path: Annotated[Path, typer.Argument(help="A .py file, a folder or a .zip.", exists=True)],
    name: Annotated[
        str | None, typer.Option(help="The function's name [default: the file's or folder's].")
    ] = None,
    entrypoint: Annotated[str, typer.Option(help="`function` or `module:function`.")] = "main",
    description: Annotated[str, typer.Option(help="What it does.")] = "",
    timeout: Annotated[float | None, typer.Option(help="Seconds a run may take.")] = None,
    memory_mb: Annotated[int | None, typer.Option(help="Memory a run may use (MiB).")] = None,
    execution_mode: Annotated[str, typer.Option(help="sync, async or both.")] = "both",
    secret: Annotated[
        list[str] | None, typer.Option(help="A secret it reads as an env variable (repeat).")
    ] = None,
    scope: Annotated[
        list[str] | None, typer.Option(help="A scope it may use calling Roost (repeat).")
    ] = None,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
    tenant: Tenant = None,
) -> None:
    """Deploy a new version of a function and make it the active one."""
    function = name or path.stem
    with (
        reporting_errors(),
        remote_client(api_url, api_key, tenant) as client,
        console.status(f"deploying {function} from {path}"),
    ):
        deployed = client.functions.deploy(
            function,
            path=path,
            entrypoint=entrypoint,
            description=description,
            timeout=timeout,
            memory_mb=memory_mb,
            execution_mode=execution_mode,
            secrets=secret,
            scopes=scope,
        )
    console.print(
        f"[green]deployed[/] {escape(deployed['name'])} version {deployed['version']} "
        f"({deployed['kind']}, {deployed['execution_mode']})"
    )


@app.command()
def invoke(
    name: str,
    params: Annotated[str, typer.Option(help="The params, as JSON.")] = "null",
    is_async: Annotated[
        bool, typer.Option("--async", help="Queue it and print its invocation id.")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="With --async: wait for its result.")
    ] = False,
    timeout: Annotated[float | None, typer.Option(help="Seconds it may take at most.")] = None,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
    tenant: Tenant = None,
) -> None:
    """Run a function and print its result as JSON (with --async, its invocation id).
    A function that fails prints its traceback and exits with 1."""
    try:
        value = json.loads(params)
    except ValueError as exc:
        console.print(f"[red]error:[/] --params is not JSON: {exc}")
        raise typer.Exit(2) from None
    with reporting_errors(), remote_client(api_url, api_key, tenant) as client:
        try:
            answer = client.functions.execute(name, value, is_async=is_async, timeout=timeout)
        except FunctionExecutionError as exc:
            _failed(exc.status, exc.message, exc.traceback)
        invocation = answer["invocation"]
        if not is_async:
            print(json.dumps(answer["data"], indent=2))
            return
        if not wait:
            print(invocation["id"])
            return
        data = _wait_for(client, invocation["id"])
    if data["status"] != "SUCCESS":
        _failed(data["status"], data["error"] or "the function failed", data["traceback"] or "")
    print(json.dumps(data["result"], indent=2))


def _wait_for(client: Client, invocation_id: str) -> dict[str, Any]:
    pause = 0.05
    while True:
        data: dict[str, Any] = client.functions.get_result(invocation_id)["data"]
        if data["status"] not in ("PENDING", "STARTED"):
            return data
        time.sleep(pause)
        pause = min(pause * 2, 1.0)


def _failed(status: str, message: str, traceback: str) -> NoReturn:
    if traceback:
        console.print(traceback, markup=False, highlight=False, style="dim")
    console.print(f"[red]{status}:[/] {escape(message)}")
    raise typer.Exit(1)


@app.command("ls")
def list_functions(
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
    tenant: Tenant = None,
) -> None:
    """List the tenant's functions."""
    with reporting_errors(), remote_client(api_url, api_key, tenant) as client:
        functions: list[dict[str, Any]] = []
        while True:
            page = client.functions.list(limit=1000, offset=len(functions))
            functions += page["results"]
            if not page["results"] or len(functions) >= page["count"]:
                break
    table = Table("name", "version", "kind", "mode", "timeout", "updated")
    for item in functions:
        table.add_row(
            escape(item["name"]),
            f"{item['version']} of {item['latest_version']}",
            item["kind"],
            item["execution_mode"],
            f"{item['timeout']:g} s",
            item["updated_at"],
        )
    console.print(table)


@app.command()
def logs(
    name: str,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Lines shown first.")] = 100,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
    tenant: Tenant = None,
) -> None:
    """Print what a function's runs printed and logged, oldest first (needs logs:read)."""
    category = f"functions:{name}"
    with reporting_errors(), remote_client(api_url, api_key, tenant) as client:
        newest = client.logs.query(category=category, limit=limit)["entries"]
        _show(newest)
        if not follow:
            return
        last = newest[0]["id"] if newest else 0
        try:
            while True:
                time.sleep(_FOLLOW_EVERY)
                fresh = _since(client, category, last)
                _show(fresh)
                if fresh:
                    last = fresh[0]["id"]
        except KeyboardInterrupt:
            return


def _since(client: Client, category: str, last: int) -> list[dict[str, Any]]:
    """Entries newer than id `last`, newest first (paging back until it is reached)."""
    found: list[dict[str, Any]] = []
    page = client.logs.query(category=category, limit=_PAGE)
    while True:
        found += [entry for entry in page["entries"] if entry["id"] > last]
        cursor = page["next_cursor"]
        if cursor is None or not page["entries"] or page["entries"][-1]["id"] <= last:
            return found
        page = client.logs.query(category=category, limit=_PAGE, cursor=cursor)


def _show(newest_first: list[dict[str, Any]]) -> None:
    for entry in reversed(newest_first):
        execution = (entry["data"] or {}).get("execution_id", "")
        line = f"{entry['at']} {entry['level']:<8} {execution} {entry['message']}"
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    console.file.flush()
