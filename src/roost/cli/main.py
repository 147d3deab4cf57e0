"""The `roost` command: serve the platform and administer it from the shell."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console

from roost._version import __version__
from roost.cli.functions import app as functions_app
from roost.cli.mail import app as mail_app
from roost.cli.policies import app as policies_app
from roost.cli.storage import app as storage_app
from roost.cli.triggers import app as triggers_app
from roost.cli.worker import worker
from roost.errors import RoostError

if TYPE_CHECKING:
    from roost.services.context import Platform

T = TypeVar("T")

app = typer.Typer(help="Roost: a self-hosted backend platform for Python.", no_args_is_help=True)
admin_app = typer.Typer(help="Administer users.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
app.add_typer(admin_app, name="admin")
app.add_typer(keys_app, name="keys")
app.add_typer(storage_app, name="storage")
app.add_typer(mail_app, name="mail")
app.add_typer(policies_app, name="policies")
app.add_typer(functions_app, name="functions")
app.add_typer(triggers_app, name="triggers")
app.command()(worker)
console = Console()

DataDir = Annotated[Path | None, typer.Option(help="Data folder [env ROOST_DATA_DIR].")]
Tenant = Annotated[str, typer.Option(help="Tenant to act on.")]


def _use_data_dir(data_dir: Path | None) -> None:
    if data_dir is not None:
        os.environ["ROOST_DATA_DIR"] = str(data_dir)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8787,
    data_dir: DataDir = None,
    database_url: Annotated[
        str | None, typer.Option(help="SQL backend URL [env ROOST_DATABASE_URL].")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Server processes.")] = 1,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Start the platform (embedded default: SQLite and ./roost-data)."""
    from roost.server.serving import serve as run_server
    from roost.server.serving import server_config
    from roost.settings import load_settings

    _use_data_dir(data_dir)
    if database_url:
        os.environ["ROOST_DATABASE_URL"] = database_url
    settings = _or_exit(load_settings)
    if workers > 1 and not settings.redis_url:
        console.print(
            "[red]error:[/] several workers need ROOST_REDIS_URL: live events, pub/sub, queue "
            "wake-ups and revocations travel between server processes through Redis. Set it, "
            "or run one worker."
        )
        raise typer.Exit(2)
    if "functions_api_url" not in settings.model_fields_set:
        # functions call this server back where it listens (the workers inherit this). Set
        # only once the server starts: a refused `serve` run in-process (a test's CliRunner)
        # would otherwise leave this port in the environment of every server started after
        # it from that process, and their functions would call a server that is not theirs
        os.environ["ROOST_FUNCTIONS_API_URL"] = _local_url(host, port)
        settings = _or_exit(load_settings)
    backend = "PostgreSQL" if settings.resolved_database_url.startswith("postgresql") else "SQLite"
    console.print(
        f"[bold]Roost {__version__}[/] on http://{host}:{port}  "
        f"(data: {settings.data_dir.resolve()}, SQL: {backend}, workers: {workers})"
    )
    console.print(f"API docs: http://{host}:{port}/docs")
    # each worker builds its app from the same environment; the config carries the limits
    config = server_config(
        "roost.server.app:create_app",
        settings,
        host=host,
        port=port,
        factory=True,
        workers=workers,
        log_level=log_level,
    )
    run_server(config)


def _local_url(host: str, port: int) -> str:
    """The URL of a server listening on `host`, as this machine reaches it."""
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - every address: loopback is one of them
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@admin_app.command("create-user")
def create_user(
    username: Annotated[str, typer.Option(prompt=True, help="Login name.")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True, hide_input=True, confirmation_prompt=True, help="At least 8 characters."
        ),
    ],
    email: Annotated[str, typer.Option(help="Email address.")] = "",
    tenant: Tenant = "default",
    data_dir: DataDir = None,
) -> None:
    """Create a superuser (the first admin)."""
    _use_data_dir(data_dir)

    async def run() -> bool:
        from roost.services.users import ensure_admin

        async with _platform() as platform:
            return await ensure_admin(platform, username, email, password, tenant=tenant)

    if _or_exit(lambda: asyncio.run(run())):
        console.print(f"[green]created[/] superuser {username!r} in tenant {tenant!r}")
    else:
        console.print(f"[yellow]user {username!r} exists[/]; nothing changed")


@keys_app.command("create")
def create_key(
    username: Annotated[str, typer.Option(help="The user the key acts for.")],
    name: Annotated[str, typer.Option(help="What the key is for.")],
    scope: Annotated[
        list[str] | None, typer.Option(help="A scope (repeat); default: the user's.")
    ] = None,
    expires_in: Annotated[int | None, typer.Option(help="Lifetime in seconds.")] = None,
    tenant: Tenant = "default",
    data_dir: DataDir = None,
) -> None:
    """Create an API key for a user and print it (it is shown only once)."""
    _use_data_dir(data_dir)

    async def run() -> str:
        from roost.services import api_keys, principals
        from roost.services.context import Context
        from roost.wire.auth import CreateApiKeyRequest
        from roost.wire.codec import build

        async with _platform() as platform:
            principal = await principals.of_user(platform, tenant, username)
            ctx = Context(platform=platform, tenant=tenant, principal=principal)
            request = build(
                CreateApiKeyRequest, name=name, scopes=scope or [], expires_in=expires_in
            )
            created = await api_keys.create(ctx, request)
            return created.key

    key = _or_exit(lambda: asyncio.run(run()))
    console.print("API key (shown once):", style="bold")
    print(key)


@app.command()
def version() -> None:
    """Print the version."""
    print(__version__)


def _platform() -> AbstractAsyncContextManager[Platform]:
    """The platform of the environment's settings, started and closed as the server does it,
    for commands that act on the data directly."""
    from roost.server.platform import open_platform
    from roost.settings import load_settings

    return open_platform(load_settings())


def _or_exit(action: Callable[[], T] | Callable[[], Awaitable[T]]) -> T:
    try:
        result = action()
    except RoostError as exc:
        console.print(f"[red]error:[/] {exc.message}")
        raise typer.Exit(2) from None
    return result  # type: ignore[return-value]


def main() -> None:
    app()
