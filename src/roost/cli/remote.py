"""What the commands that talk to a running server share: its address, a key, the tenant, and
how an error ends the command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console

from roost.client._sync.client import Client
from roost.errors import RoostError

console = Console()

ApiUrl = Annotated[str | None, typer.Option(help="Server URL [env ROOST_API_URL].")]
ApiKey = Annotated[str | None, typer.Option(help="API key [env ROOST_API_KEY].")]
Tenant = Annotated[str | None, typer.Option(help="Tenant [env ROOST_TENANT].")]


def remote_client(api_url: str | None, api_key: str | None, tenant: str | None) -> Client:
    return Client(
        api_url=api_url, token=api_key, token_type="api_key" if api_key else None, tenant=tenant
    )


@contextmanager
def reporting_errors() -> Iterator[None]:
    """A RoostError ends the command with its message and exit code 2."""
    try:
        yield
    except RoostError as exc:
        console.print(f"[red]error:[/] {exc.message}")
        raise typer.Exit(2) from None
