"""`roost login` / `logout`, `roost keys list|revoke` and `roost users ...`: accounts of a
running server, through its API (so every check of the server applies)."""

from __future__ import annotations

import socket
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from roost.cli import credentials
from roost.cli.remote import (
    ApiKey,
    ApiUrl,
    Tenant,
    console,
    remote_client,
    reporting_errors,
    server_url,
)

users_app = typer.Typer(help="Users of a running server.", no_args_is_help=True)


def login(
    username: Annotated[str, typer.Option(prompt=True, help="Login name or email.")],
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, help="Asked for when not given.")
    ],
    api_url: ApiUrl = None,
    tenant: Tenant = None,
) -> None:
    """Sign in to a server and keep an API key for it in your config folder (0600): the
    commands that talk to that server use it when no --api-key is given."""
    from roost.client._sync.client import Client

    url = server_url(api_url)
    with reporting_errors(), Client(api_url=url, tenant=tenant) as client:
        signed_in = client.auth.sign_in_with_password(username, password)
        who = signed_in.auth.whoami()
        created = signed_in.api_keys.create(f"roost login on {socket.gethostname()}"[:100])
        signed_in.auth.sign_out()
    previous = credentials.stored(url)
    path = credentials.store(
        url,
        {
            "api_key": created["key"],
            "key_id": created["id"],
            "tenant": who["tenant"],
            "username": username,
        },
    )
    if previous is not None:
        _revoke_quietly(url, previous)
    console.print(
        f"[green]signed in[/] to {escape(url)} as {escape(username)} "
        f"(tenant {escape(who['tenant'])}); key kept in {escape(str(path))}",
        highlight=False,
    )


def logout(api_url: ApiUrl = None) -> None:
    """Revoke the key `roost login` kept for a server, and forget it."""
    url = server_url(api_url)
    with reporting_errors():
        entry = credentials.forget(url)
    if entry is None:
        console.print(f"not signed in to {escape(url)}", highlight=False)
        return
    revoked = _revoke_quietly(url, entry)
    note = "" if revoked else " (the server could not be told: revoke the key there)"
    console.print(f"[green]signed out[/] of {escape(url)}{note}", highlight=False)


def _revoke_quietly(url: str, entry: dict[str, str]) -> bool:
    """Revoke a stored key with itself; False if the server is away or refuses."""
    from roost.errors import RoostError

    try:
        with remote_client(url, entry["api_key"], entry.get("tenant")) as client:
            client.api_keys.revoke(entry["key_id"])
    except RoostError:
        return False
    return True


def list_keys(api_url: ApiUrl = None, api_key: ApiKey = None, tenant: Tenant = None) -> None:
    """List your API keys (never their secrets)."""
    with reporting_errors(), remote_client(api_url, api_key, tenant, required=True) as client:
        keys = client.api_keys.list()
    table = Table("id", "name", "prefix", "scopes", "expires", "last used", "revoked")
    for key in keys:
        table.add_row(
            *(
                escape(str(key.get(field) or ""))
                for field in ("id", "name", "prefix", "scopes", "expires_at", "last_used_at")
            ),
            "yes" if key.get("revoked_at") or key.get("revoked") else "",
        )
    console.print(table)


def revoke_key(
    key_id: Annotated[str, typer.Argument(help="The key's id (see `roost keys list`).")],
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
    tenant: Tenant = None,
) -> None:
    """Revoke an API key: it is refused from then on."""
    with reporting_errors(), remote_client(api_url, api_key, tenant, required=True) as client:
        client.api_keys.revoke(key_id)
    console.print(f"[green]revoked[/] {escape(key_id)}", highlight=False)


@users_app.command("ls")
def list_users(
    search: Annotated[str | None, typer.Option(help="Only names or emails with this.")] = None,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
    tenant: Tenant = None,
) -> None:
    """List the users of the tenant."""
    with reporting_errors(), remote_client(api_url, api_key, tenant, required=True) as client:
        listed = client.users.list_users(search, page_size=200)
    rows = listed["items"] if isinstance(listed, dict) else listed
    table = Table("username", "email", "roles", "superuser", "active")
    for user in rows:
        table.add_row(
            escape(user["username"]),
            escape(user.get("email") or ""),
            escape(", ".join(user.get("roles") or [])),
            "yes" if user.get("is_superuser") else "",
            "yes" if user.get("is_active", True) else "no",
        )
    console.print(table)


@users_app.command("create")
def create_user(
    username: Annotated[str, typer.Argument(help="Login name.")],
    password: Annotated[
        str,
        typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="Asked for."),
    ],
    email: Annotated[str, typer.Option(help="Email address.")] = "",
    role: Annotated[list[str] | None, typer.Option(help="A role to give (repeat).")] = None,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
    tenant: Tenant = None,
) -> None:
    """Create a user."""
    with reporting_errors(), remote_client(api_url, api_key, tenant, required=True) as client:
        client.users.create_user(username, password, email=email, roles=role or [])
    console.print(f"[green]created[/] {escape(username)}", highlight=False)


@users_app.command("rm")
def remove_user(
    username: str, api_url: ApiUrl = None, api_key: ApiKey = None, tenant: Tenant = None
) -> None:
    """Delete a user, with their sessions and keys."""
    with reporting_errors(), remote_client(api_url, api_key, tenant, required=True) as client:
        client.users.delete_user(username)
    console.print(f"[green]deleted[/] {escape(username)}", highlight=False)


@users_app.command("set-role")
def set_role(
    username: str,
    role: str,
    remove: Annotated[bool, typer.Option("--remove", help="Take the role away.")] = False,
    api_url: ApiUrl = None,
    api_key: ApiKey = None,
    tenant: Tenant = None,
) -> None:
    """Give a user a role (or take it away with --remove)."""
    with reporting_errors(), remote_client(api_url, api_key, tenant, required=True) as client:
        if remove:
            count = client.users.revoke_roles([role], [username])
        else:
            count = client.users.assign_roles([role], [username])
    what = "took" if remove else "gave"
    console.print(f"{what} {escape(role)}: {count} change(s)", highlight=False)
