"""`roost mail`: the mail a running server has sent, or kept in its outbox."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from roost.cli.remote import ApiKey, ApiUrl, Tenant, console, remote_client, reporting_errors

app = typer.Typer(help="Read the mail a running server sent or kept.", no_args_is_help=True)


@app.command("outbox")
def show_outbox(
    to: Annotated[str | None, typer.Option(help="Only mail to this address.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    full: Annotated[bool, typer.Option("--full", help="Print each message's text.")] = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
    tenant: Tenant = None,
) -> None:
    """List mail, newest first (status sent, outbox or failed)."""
    with reporting_errors(), remote_client(api_url, api_key, tenant) as client:
        messages = client.mail.outbox(to=to, limit=limit)
    table = Table("sent at", "status", "to", "subject", "template")
    for message in messages:
        table.add_row(
            message["at"],
            message["status"],
            ", ".join(message["to"]),
            message["subject"],
            message["template"],
        )
    console.print(table)
    if full:
        for message in messages:
            console.rule(f"{message['subject']} to {', '.join(message['to'])}")
            console.print(message["text"], markup=False, highlight=False)
            if message["error"]:
                console.print(f"[red]not delivered:[/] {message['error']}")
