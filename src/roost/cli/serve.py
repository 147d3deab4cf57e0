"""`roost serve`, in a module of its own: `roost serve` reads a plain command line of its
options itself, and hands any other to a command group that holds this one command (`main`),
so that it neither imports the other commands' modules nor has Typer build all of them (~60
ms of its start together); every other command line goes through the whole group
(`roost.cli.main`), where `serve` is registered as well.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, get_args, get_origin, get_type_hints

import msgspec

from roost._version import __version__
from roost.errors import RoostError, ServiceUnavailableError

if TYPE_CHECKING:
    from rich.console import Console

    from roost.settings import Settings

T = TypeVar("T")

HELP = "Roost: a self-hosted backend platform for Python."
DATA_DIR_HELP = "Data folder \\[env: ROOST_DATA_DIR]."


@functools.cache
def console() -> Console:
    """The console of the `roost` command's errors and warnings. `roost serve` prints its
    usual lines as plain text and imports rich only for these: with Typer, rich was ~14% of
    its start-up. No emoji codes: no message means one, and a name or path holding `:word:`
    prints as it is."""
    from rich.console import Console

    return Console(emoji=False)


def fail(message: str) -> SystemExit:
    """The end of the command: `message` printed as an error, exit code 2 (raise it)."""
    from rich.markup import escape

    console().print(f"[red]error:[/] {escape(message)}", highlight=False)
    return SystemExit(2)


class Option(msgspec.Struct, frozen=True):
    """A `serve` option's help and bounds, as `Annotated` metadata that `plain_options` reads
    without importing Typer; `for_typer` turns it into a `typer.Option`. A Struct, as the
    server's value classes are: a frozen dataclass costs ~1.3 ms of start-up to define."""

    help: str
    min: int | None = None
    max: int | None = None


def main() -> None:
    """`roost serve ...`: a command line of `serve`'s options and values alone is read here
    (`plain_options`); any other (`--help`, a value that does not convert, an unknown option)
    goes to the group of the `roost` command with `serve` alone in it, which answers as the
    whole group does. The callback keeps it a group (Typer runs a lone command without its
    name otherwise)."""
    options = plain_options(sys.argv[2:])
    if options is not None:
        try:
            serve(**options)
        except KeyboardInterrupt:  # as Typer ends a command the user interrupted
            print("\nAborted!", file=sys.stderr)
            sys.exit(1)
        return
    import typer

    app = typer.Typer(help=HELP, no_args_is_help=True)
    app.callback()(_group)
    app.command()(for_typer(serve))
    app()


def for_typer(command: Callable[..., None]) -> Callable[..., None]:
    """`command` as Typer reads it: each `Option` of its annotations a `typer.Option`."""
    import typer

    def typed(hint: Any) -> Any:
        if get_origin(hint) is not Annotated:
            return hint
        kind, *extras = get_args(hint)
        extras = [
            typer.Option(help=extra.help, min=extra.min, max=extra.max)
            if isinstance(extra, Option)
            else extra
            for extra in extras
        ]
        return Annotated[(kind, *extras)]

    @functools.wraps(command)
    def run(**options: Any) -> None:
        command(**options)

    given = get_type_hints(command, include_extras=True)
    hints = {name: typed(hint) for name, hint in given.items()}
    signature = inspect.signature(command)
    run.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p.replace(annotation=hints[p.name]) for p in signature.parameters.values()]
    )
    run.__annotations__ = hints
    return run


def plain_options(args: list[str]) -> dict[str, Any] | None:
    """`serve`'s arguments from `--name value` and `--name=value` pairs of its own options,
    converted as Typer converts them; None for anything else, which Typer then reads (and
    explains). Typer converts every value through a pydantic TypeAdapter, and importing
    pydantic and building the adapters was ~9% of `roost serve`'s start-up
    (tests/cli/test_serve_options.py checks that both read the same)."""
    kinds = {
        f"--{name.replace('_', '-')}": (name, *get_args(hint))
        for name, hint in get_type_hints(serve, include_extras=True).items()
        if name != "return"
    }
    given: dict[str, Any] = {}
    remaining = iter(args)
    for arg in remaining:
        flag, has_value, value = arg.partition("=")
        if flag not in kinds:
            return None
        if not has_value:
            value = next(remaining, "--")
        name, kind, option = kinds[flag]
        if value.startswith("--"):
            return None
        if kind is int:
            if not value.isascii() or not value.isdigit():
                return None
            number = int(value)
            if (option.min is not None and number < option.min) or (
                option.max is not None and number > option.max
            ):
                return None
            given[name] = number
        elif kind in (str, str | None):
            given[name] = value
        elif kind == Path | None:
            given[name] = Path(value)
        else:
            return None
    return given


def _group() -> None:
    """Roost: a self-hosted backend platform for Python."""


def use_data_dir(data_dir: Path | None) -> None:
    """Point the settings at `--data-dir` when given (ROOST_DATA_DIR)."""
    if data_dir is not None:
        os.environ["ROOST_DATA_DIR"] = str(data_dir)


def serve(
    host: Annotated[str, Option("Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, Option("Port to listen on.")] = 8787,
    data_dir: Annotated[Path | None, Option(DATA_DIR_HELP)] = None,
    database_url: Annotated[
        str | None, Option("SQL backend URL \\[env: ROOST_DATABASE_URL].")
    ] = None,
    workers: Annotated[int, Option("Server processes.", min=1, max=64)] = 1,
    log_level: Annotated[str, Option("debug, info, warning or error.")] = "info",
) -> None:
    """Start the platform (embedded default: SQLite and ./roost-data)."""
    from roost.server.serving import serve as run_server
    from roost.server.serving import server_config
    from roost.settings import is_given, load_settings

    use_data_dir(data_dir)
    if database_url:
        os.environ["ROOST_DATABASE_URL"] = database_url
    settings = or_exit(load_settings)
    if workers > 1 and not settings.redis_url:
        raise fail(
            "several workers need ROOST_REDIS_URL: live events, pub/sub, queue wake-ups and "
            "revocations travel between server processes through Redis. Set it, or run one "
            "worker."
        )
    if not is_given("functions_api_url"):
        # functions call this server back where it listens (the workers inherit this). Set
        # only once the server starts: a refused `serve` run in-process (a test's CliRunner)
        # would otherwise leave this port in the environment of every server started after
        # it from that process, and their functions would call a server that is not theirs
        url = _local_url(host, port)
        os.environ["ROOST_FUNCTIONS_API_URL"] = url
        settings = msgspec.structs.replace(settings, functions_api_url=url)
    backend = "PostgreSQL" if settings.resolved_database_url.startswith("postgresql") else "SQLite"
    _first_run_notes(settings)
    print(
        f"Roost {__version__} on http://{host}:{port}  "
        f"(data: {settings.data_dir.resolve()}, SQL: {backend}, workers: {workers})"
    )
    print(f"API docs: http://{host}:{port}/docs")
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


def _first_run_notes(settings: Settings) -> None:
    """Say what a newcomer needs to know before the server starts: a new data folder, and
    whether anyone can sign in as a superuser (and how to make one if not). An unreachable
    database ends the command here, in one line."""
    from sqlalchemy.engine import make_url

    data_dir = settings.data_dir.resolve()
    if not data_dir.exists():
        print(f"creating a new data folder at {data_dir}")
    quiet = logging.getLogger("roost.backends")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # the one line below says it; no logged warning too
    try:
        names = asyncio.run(_superusers(settings))
    except ServiceUnavailableError:
        url = make_url(settings.resolved_database_url)
        raise fail(
            f"cannot reach the database at {url.host}:{url.port or 5432} "
            "(ROOST_DATABASE_URL): is PostgreSQL running, and the URL right?"
        ) from None
    except RoostError as exc:
        raise fail(exc.message) from None
    finally:
        quiet.setLevel(level)
    if names:
        shown = ", ".join(repr(name) for name in names[:5])
        print(f"superuser: {shown}")
    elif settings.admin_password:
        print(
            f"no superuser yet: {settings.admin_username!r} is created now from "
            "ROOST_ADMIN_PASSWORD"
        )
    else:
        where = f" --data-dir {data_dir}" if settings.database_url is None else ""
        console().print(
            "[yellow]no superuser yet[/]: create one with "
            f"`roost admin create-user{where}`, or start with ROOST_ADMIN_PASSWORD set",
            highlight=False,
        )


async def _superusers(settings: Settings) -> list[str]:
    """The superusers of the default tenant, read without changing anything (none when the
    database or its tables are not made yet)."""
    from sqlalchemy import Connection, inspect, select

    from roost.backends.sql import Database
    from roost.backends.sql.tables import users

    db = Database(
        settings.resolved_database_url,
        data_dir=settings.data_dir,
        pg_schema_prefix=settings.pg_schema_prefix,
    )
    if db.dialect == "sqlite" and not db.sqlite_path_of("default").exists():
        return []

    def work(conn: Connection) -> list[str]:
        schema = db.schema_of("default") if conn.dialect.name == "postgresql" else None
        if not inspect(conn).has_table(users.name, schema=schema):
            return []
        query = select(users.c.username).where(users.c.is_superuser.is_(True)).limit(5)
        return list(conn.execute(query).scalars())

    try:
        return await db.run("default", work)
    finally:
        await db.close()


def _local_url(host: str, port: int) -> str:
    """The URL of a server listening on `host`, as this machine reaches it."""
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - every address: loopback is one of them
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def or_exit(action: Callable[[], T] | Callable[[], Awaitable[T]]) -> T:
    """`action()` (awaited if it is a coroutine function's), or the command ended in one line
    naming the problem (exit code 2) if it raises a RoostError or an OSError."""
    try:
        result = action()
    except RoostError as exc:
        raise fail(exc.message) from None
    except OSError as exc:  # a file or folder that cannot be read or written
        raise fail(str(exc)) from None
    return result  # type: ignore[return-value]
