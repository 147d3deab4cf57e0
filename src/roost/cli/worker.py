"""`roost worker`: a process that runs async function invocations and serves no API.

It opens the deployment's platform as a server does (the same SQL database, blob store,
queue backend and keys: the same `ROOST_*` settings), starts its own pool of sandboxed
workers and takes async invocations from the functions queue until it is stopped (SIGTERM
or Ctrl-C: runs under way are stopped and given back to the queue for another process).
Scaled out it takes them from Redis, on any machine; on one machine it can share an
embedded server's data dir and take them from SQLite.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import msgspec
import typer
from rich.console import Console

from roost.errors import ConfigurationError

if TYPE_CHECKING:
    from roost.settings import Settings

console = Console()


def worker(
    data_dir: Annotated[
        Path | None, typer.Option(help="Data folder, as the servers' \\[env: ROOST_DATA_DIR].")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="SQL backend URL \\[env: ROOST_DATABASE_URL].")
    ] = None,
    redis_url: Annotated[
        str | None, typer.Option(help="Redis URL of the deployment \\[env: ROOST_REDIS_URL].")
    ] = None,
    api_url: Annotated[
        str | None,
        typer.Option(help="Where functions reach the API \\[env: ROOST_FUNCTIONS_API_URL]."),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=1024,
            help="Invocations run at once \\[env: ROOST_FUNCTIONS_ASYNC_CONCURRENCY unless 0, else "
            "the pool size].",
        ),
    ] = None,
    pool_size: Annotated[
        int | None,
        typer.Option(
            min=1, max=1024, help="Sandboxed worker processes \\[env: ROOST_FUNCTIONS_POOL_SIZE]."
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run async function invocations taken from the queue backend (no API is served)."""
    from roost.settings import load_settings

    given = {
        "data_dir": data_dir,
        "database_url": database_url,
        "redis_url": redis_url,
        "functions_api_url": api_url,
        "functions_pool_size": pool_size,
        "functions_async_concurrency": concurrency,
    }
    overrides = {name: value for name, value in given.items() if value is not None}
    try:
        settings = load_settings(functions_enabled=True, **overrides)
        logging.basicConfig(
            level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        asyncio.run(_work(settings))
    except ConfigurationError as exc:
        console.print(f"[red]error:[/] {exc.message}")
        raise typer.Exit(2) from None


async def _work(settings: Settings) -> None:
    from roost.server.platform import async_concurrency, build_platform, open_platform

    # 0 tells API servers to leave async runs to workers: a worker shares their settings
    runs = async_concurrency(settings) or settings.functions_pool_size
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    settings = msgspec.structs.replace(settings, functions_async_concurrency=runs)
    platform = build_platform(settings)
    platform.serves_api = False  # revocations are made in the API's processes
    async with open_platform(settings, platform=platform):
        if platform.functions is None or not await platform.functions.ready():
            raise ConfigurationError(
                "the function runtime could not start here (see the log above)"
            )
        queue = "Redis" if settings.redis_url else "SQL"
        console.print(
            f"[bold]Roost worker[/]: {runs} invocations at once on {settings.functions_pool_size} "
            f"sandboxed workers ({platform.functions.isolation}); queue on {queue}; functions "
            f"call {settings.functions_api_url}",
            highlight=False,
        )
        await stop.wait()
    console.print("worker stopped")
