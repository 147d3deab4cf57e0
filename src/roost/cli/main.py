"""The `roost` command: serve the platform and administer it from the shell."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from roost._version import __version__
from roost.cli import accounts, remote
from roost.cli.backup import DataDir
from roost.cli.functions import app as functions_app
from roost.cli.mail import app as mail_app
from roost.cli.policies import app as policies_app
from roost.cli.remote import ApiKey, ApiUrl, remote_client, reporting_errors
from roost.cli.remote import Tenant as RemoteTenant
from roost.cli.serve import HELP, console, for_typer, or_exit, serve, use_data_dir
from roost.cli.storage import app as storage_app
from roost.cli.triggers import app as triggers_app
from roost.cli.worker import worker
from roost.errors import ConfigurationError

if TYPE_CHECKING:
    from roost.services.context import Platform


app = typer.Typer(help=HELP, no_args_is_help=True)
admin_app = typer.Typer(help="Administer users.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
app.add_typer(admin_app, name="admin")
app.add_typer(keys_app, name="keys")
app.add_typer(storage_app, name="storage")
app.add_typer(mail_app, name="mail")
app.add_typer(policies_app, name="policies")
app.add_typer(functions_app, name="functions")
app.add_typer(triggers_app, name="triggers")
migrate_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
app.add_typer(accounts.users_app, name="users")
app.add_typer(migrate_app, name="migrate")
app.command()(worker)
app.command()(accounts.login)
app.command()(accounts.logout)
keys_app.command("list")(accounts.list_keys)
keys_app.command("revoke")(accounts.revoke_key)


Tenant = Annotated[str, typer.Option(help="Tenant to act on.")]

app.command()(for_typer(serve))


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
    use_data_dir(data_dir)

    async def run() -> bool:
        from roost.services.users import ensure_admin

        async with _platform() as platform:
            return await ensure_admin(platform, username, email, password, tenant=tenant)

    if or_exit(lambda: asyncio.run(run())):
        console().print(f"[green]created[/] superuser {username!r} in tenant {tenant!r}")
    else:
        console().print(f"[yellow]user {username!r} exists[/]; nothing changed")


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
    use_data_dir(data_dir)

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

    key = or_exit(lambda: asyncio.run(run()))
    console().print("API key (shown once):", style="bold")
    print(key)


@migrate_app.command("status")
def migrate_status(data_dir: DataDir = None) -> None:
    """Steps applied per namespace (the control database and each tenant) against the steps
    this version knows. Changes nothing: the server applies them when it starts."""
    use_data_dir(data_dir)
    rows = or_exit(lambda: asyncio.run(_migration_rows()))
    table = Table("namespace", "applied", "known", "pending")
    behind = 0
    for namespace, applied, known in rows:
        pending = [step for step in known if step not in applied]
        behind += bool(pending)
        table.add_row(
            namespace,
            str(len(applied & set(known))),
            str(len(known)),
            ", ".join(map(str, pending)) or "-",
        )
    console().print(table)
    if behind:
        console().print(f"{behind} namespace(s) behind: `roost serve` brings them up to date")


async def _migration_rows() -> list[tuple[str, set[int], list[int]]]:
    from sqlalchemy import select

    from roost.backends.sql import CONTROL, Database
    from roost.backends.sql.migrations import applied_steps, known_steps
    from roost.backends.sql.tables import tenants
    from roost.settings import load_settings

    settings = load_settings()
    db = Database(
        settings.resolved_database_url,
        data_dir=settings.data_dir,
        pg_schema_prefix=settings.pg_schema_prefix,
    )
    if db.dialect == "sqlite" and not db.sqlite_path_of(CONTROL).exists():
        raise ConfigurationError(f"no database in {settings.data_dir.resolve()} yet")
    try:
        control = await applied_steps(db, CONTROL)
        names: list[str] = []
        if control:
            async with db.read(CONTROL) as conn:
                names = list((await conn.execute(select(tenants.c.name))).scalars())
        rows = [("control", control, known_steps(CONTROL))]
        for name in sorted(names):
            rows.append((name, await applied_steps(db, name), known_steps(name)))
        return rows
    finally:
        await db.close()


@app.command()
def backup(
    file: Annotated[Path, typer.Argument(help="The snapshot to write (a .tar.gz).")],
    data_dir: DataDir = None,
) -> None:
    """Snapshot the embedded default (SQLite databases, files, keys) while the server runs."""
    from roost.cli.backup import back_up, embedded
    from roost.settings import load_settings

    use_data_dir(data_dir)
    settings = or_exit(load_settings)
    folder = or_exit(lambda: embedded(settings))
    databases, files = or_exit(lambda: back_up(folder, file))
    console().print(
        f"[green]backed up[/] {folder.resolve()} to {file}: {databases} databases, "
        f"{files} other files",
        highlight=False,
    )


@app.command()
def restore(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A snapshot.")],
    data_dir: DataDir = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Move a non-empty data folder aside first.")
    ] = False,
) -> None:
    """Restore a snapshot of `roost backup` into the data folder (stop the server first)."""
    from roost.cli.backup import restore as unpack
    from roost.settings import load_settings

    use_data_dir(data_dir)
    settings = or_exit(load_settings)
    count = or_exit(lambda: unpack(file, settings.data_dir, replace=replace))
    console().print(
        f"[green]restored[/] {count} files into {settings.data_dir.resolve()}", highlight=False
    )


@app.command("export")
def export_command(
    file: Annotated[Path, typer.Argument(help="The JSON lines file to write.", dir_okay=False)],
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
    tenant: RemoteTenant = None,
) -> None:
    """Write a tenant to FILE as JSON lines: tables, rows, documents, secret names.

    Through the API of a running server; secret values never leave it."""
    from roost.cli.transfer import export_tenant

    partial = file.with_name(f".{file.name}.part")
    with reporting_errors(), remote_client(api_url, api_key, tenant, required=True) as client:
        try:
            with partial.open("wb") as out:
                counts = export_tenant(client, out)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    partial.replace(file)
    remote.console.print(f"[green]exported[/] {counts.summary()} to {file}", highlight=False)


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="An export.")],
    merge: Annotated[
        bool,
        typer.Option("--merge", help="Upsert into tables that exist (by primary key)."),
    ] = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
    tenant: RemoteTenant = None,
) -> None:
    """Recreate a `roost export` file's tables, rows and documents in a tenant.

    The whole file is checked first: a bad line, named by its number, changes nothing."""
    from roost.cli.transfer import import_tenant

    with reporting_errors(), remote_client(api_url, api_key, tenant, required=True) as client:
        counts = import_tenant(client, file, merge=merge)
    remote.console.print(f"[green]imported[/] {counts.summary()} from {file}", highlight=False)
    if counts.secrets:
        remote.console.print(
            f"secrets are exported by name only; set them again: {', '.join(counts.secrets)}",
            highlight=False,
        )


@app.command()
def version() -> None:
    """Print the version."""
    print(__version__)


def _platform() -> AbstractAsyncContextManager[Platform]:
    """The platform of the environment's settings, started and closed as the server does it,
    for commands that act on the data directly."""
    from roost.server.platform import open_platform
    from roost.settings import load_settings

    # no function runtime: these commands run no functions, and its sandboxed workers would
    # contend for the uids of a server running on the same host
    return open_platform(load_settings(functions_enabled=False))


def main() -> None:
    app()
