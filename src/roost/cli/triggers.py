"""`roost triggers`: list, make and delete the triggers of a running server."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from roost.cli.remote import ApiKey, ApiUrl, Tenant, console, remote_client, reporting_errors

app = typer.Typer(help="List, make and delete triggers.", no_args_is_help=True)


@app.command("ls")
def list_triggers(
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
    tenant: Tenant = None,
) -> None:
    """List the tenant's triggers."""
    with reporting_errors(), remote_client(api_url, api_key, tenant) as client:
        found = client.triggers.list()
    table = Table("name", "source", "target", "enabled", "owner")
    for item in found:
        table.add_row(
            escape(item["name"]),
            escape(_summary(item["source"])),
            escape(_summary(item["target"])),
            "yes" if item["enabled"] else "paused",
            escape(item["owner"]),
        )
    console.print(table)


@app.command()
def create(
    name: str,
    source: Annotated[
        str,
        typer.Option(
            help='The source as JSON: \'{"kind": "cron", "schedule": "@daily"}\', '
            '\'{"kind": "database", "table": "orders", "events": ["insert"]}\'...'
        ),
    ],
    function: Annotated[str | None, typer.Option(help="Run this function.")] = None,
    url: Annotated[str | None, typer.Option(help="POST each event to this URL.")] = None,
    description: Annotated[str, typer.Option(help="What it is for.")] = "",
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
    tenant: Tenant = None,
) -> None:
    """Make a trigger whose target is a function (--function) or a URL (--url). A URL
    target's signing secret is printed once."""
    if (function is None) == (url is None):
        console.print("[red]error:[/] give one of --function and --url")
        raise typer.Exit(2)
    try:
        parsed = json.loads(source)
    except ValueError as exc:
        console.print(f"[red]error:[/] --source is not JSON: {exc}")
        raise typer.Exit(2) from None
    target = {"kind": "function", "name": function} if function else {"kind": "url", "url": url}
    with reporting_errors(), remote_client(api_url, api_key, tenant) as client:
        made = client.triggers.create(name, parsed, target, description=description)
    console.print(f"made trigger [bold]{escape(made['name'])}[/]")
    if made.get("secret"):
        console.print(f"signing secret (shown once): {made['secret']}")


@app.command("rm")
def remove(
    name: str,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
    tenant: Tenant = None,
) -> None:
    """Delete a trigger and its deliveries."""
    with reporting_errors(), remote_client(api_url, api_key, tenant) as client:
        client.triggers.delete(name)
    console.print(f"deleted trigger [bold]{escape(name)}[/]")


def _summary(part: dict[str, Any]) -> str:
    kind = str(part.get("kind", "?"))
    rest = ", ".join(f"{k}={v}" for k, v in part.items() if k != "kind")
    return f"{kind}: {rest}" if rest else kind
