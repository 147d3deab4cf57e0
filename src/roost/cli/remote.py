"""What the commands that talk to a running server share: its address, a key (given, or the
one `roost login` stored for that address), the tenant, and how an error ends the command."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from roost.cli.credentials import stored
from roost.errors import NotAuthenticatedError, RoostError

if TYPE_CHECKING:  # the SDK loads only for the commands that talk to a server, not `serve`
    from roost.client._sync.client import Client

console = Console()

ApiUrl = Annotated[str | None, typer.Option(help="Server URL \\[env: ROOST_API_URL].")]
ApiKey = Annotated[
    str | None,
    typer.Option(help="API key \\[env: ROOST_API_KEY]; default: the one `roost login` stored."),
]
Tenant = Annotated[str | None, typer.Option(help="Tenant \\[env: ROOST_TENANT].")]


def server_url(api_url: str | None) -> str:
    """The URL the command talks to: `--api-url`, else ROOST_API_URL, else the default."""
    from roost.client._core.config import ClientConfig

    return ClientConfig.resolve(api_url=api_url).api_url


def remote_client(
    api_url: str | None, api_key: str | None, tenant: str | None, *, required: bool = False
) -> Client:
    """A client of the server, with `api_key`, ROOST_API_KEY or the key `roost login` stored
    for its URL. `required`: refuse now, before anything is sent, if there is no credential
    (a command that would otherwise upload a whole file to hear 401 at the end)."""
    from roost.client._sync.client import Client

    url = server_url(api_url)
    key = api_key or os.environ.get("ROOST_API_KEY")
    if not key:
        entry = stored(url)
        if entry is not None:
            key = entry["api_key"]
            tenant = tenant or entry.get("tenant")
    if required and not key:
        raise NotAuthenticatedError(
            f"no credential for {url}: run `roost login --api-url {url}`, or pass --api-key"
        )
    return Client(api_url=url, token=key, token_type="api_key" if key else None, tenant=tenant)


@contextmanager
def reporting_errors() -> Iterator[None]:
    """A RoostError ends the command with its message and exit code 2."""
    try:
        yield
    except RoostError as exc:
        console.print(f"[red]error:[/] {escape(exc.message)}", highlight=False)
        raise typer.Exit(2) from None
