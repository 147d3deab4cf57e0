"""One platform lifecycle for the app, the CLI and the tests: build, start, serve, close.

```python
async with open_platform(settings) as platform:
    ...  # tables migrated, blobs ready, the bus listening, the first admin made
# every backend is closed here, in reverse order of need, whatever happened
```
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from roost.backends.blob import open_blob_store
from roost.backends.bus import open_bus
from roost.backends.kv import open_kv_store
from roost.backends.mail import open_mailer
from roost.backends.queue import open_queue_store
from roost.backends.ratelimit import open_limiter
from roost.backends.sql import Database
from roost.backends.sql.confined import ReadLimits
from roost.backends.stream import open_stream_store
from roost.clock import Clock
from roost.errors import ConfigurationError
from roost.services.context import Platform, PrincipalCache
from roost.services.metering import Meter
from roost.services.security import AccessTokens, Passwords
from roost.services.tenants import migrate_all
from roost.services.users import ensure_admin
from roost.services.vault import Vault
from roost.settings import Settings

logger = logging.getLogger("roost.server")


def build_platform(settings: Settings, *, clock: Clock | None = None) -> Platform:
    """The backends a server runs on, each chosen by the scheme of its URL (nothing is
    connected yet; `open_platform` starts and closes them). `clock`: the time its expiries
    are measured on (`roost.clock`), the machine's by default."""
    clock = clock or Clock()
    db = Database(
        settings.resolved_database_url,
        data_dir=settings.data_dir,
        pg_schema_prefix=settings.pg_schema_prefix,
        role_key=settings.master_key_bytes(),
        read_limits=ReadLimits(
            concurrent=settings.analytics_max_concurrent,
            per_namespace=settings.analytics_max_per_tenant,
            result_bytes=settings.analytics_max_result_bytes,
        ),
    )
    messaging = settings.redis_url
    return Platform(
        settings=settings,
        db=db,
        kv=open_kv_store(messaging, db, near_cache_bytes=settings.kv_near_cache_bytes),
        queues=open_queue_store(messaging, db),
        streams=open_stream_store(messaging, db),
        bus=open_bus(messaging),
        limiter=open_limiter(messaging, clock=clock),
        access_tokens=AccessTokens(
            settings.signing_key(), settings.access_token_ttl, clock=clock.time
        ),
        passwords=Passwords(
            settings.password_hash_memory_kib,
            settings.password_hash_time_cost,
            settings.password_hash_parallelism,
        ),
        blobs=open_blob_store(settings.storage_url, settings.data_dir),
        principals=PrincipalCache(settings.auth_cache_seconds, clock=clock.time),
        vault=Vault(settings.master_key_bytes()),
        mailer=open_mailer(settings.smtp_url, settings.data_dir / "mail"),
        meter=Meter(),
        clock=clock,
    )


@asynccontextmanager
async def open_platform(
    settings: Settings, *, platform: Platform | None = None
) -> AsyncIterator[Platform]:
    """The platform of `settings` (or the one given, built by `build_platform`), started,
    metering, and closed when the block ends, even if starting failed half way."""
    platform = platform or build_platform(settings)
    metering: asyncio.Task[None] | None = None
    try:
        await _start(platform)
        metering = asyncio.create_task(platform.meter.run(platform.db))
        async with _function_runtime(platform), _async_runner(platform), _triggers(platform):
            try:
                yield platform
            finally:  # the records of the last sync runs, before the database closes
                await platform.function_records.close()
    finally:
        if metering is not None:
            metering.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await metering
        await _close(platform)


async def _start(platform: Platform) -> None:
    """Bring every tenant's tables up to date and create the first admin if configured."""
    settings = platform.settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not settings.pg_allow_superuser and await platform.db.connects_as_superuser():
        # a superuser passes every check the database makes for tenants (analytics' roles)
        raise ConfigurationError(
            "the server connects to PostgreSQL as a superuser; connect as a role with LOGIN, "
            "CREATEROLE and CREATE on the database (see README), or set "
            "ROOST_PG_ALLOW_SUPERUSER=true"
        )
    await migrate_all(platform)
    await platform.blobs.prepare()
    await platform.bus.start()
    platform.listen_for_revocations()
    if settings.admin_password:
        created = await ensure_admin(
            platform, settings.admin_username, settings.admin_email or "", settings.admin_password
        )
        if created:
            logger.info("created admin user %r", settings.admin_username)


@asynccontextmanager
async def _function_runtime(platform: Platform) -> AsyncIterator[None]:
    """The function runtime's warm workers, while the platform runs (with
    `functions_enabled`). They start in the background: the server answers at once, and
    the first runs wait for them. A host that can sandbox nothing still serves everything
    else: the error is logged, `health` shows functions down with it, and runs answer 503."""
    settings = platform.settings
    if not settings.functions_enabled:
        yield
        return
    from roost.functions.pool import WorkerPool  # the runtime loads only where it runs

    made = settings.functions_run_dir is None
    run_dir = settings.functions_run_dir or Path(tempfile.mkdtemp(prefix="roost-functions-"))
    pool = WorkerPool.from_settings(settings, run_dir=run_dir, api_url=settings.functions_api_url)
    pool.start_soon()
    platform.functions = pool
    try:
        yield
    finally:
        platform.functions = None
        await pool.close()
        if made:
            await asyncio.to_thread(shutil.rmtree, run_dir, True)


@asynccontextmanager
async def _async_runner(platform: Platform) -> AsyncIterator[None]:
    """Async invocations taken from the functions queue and run here, while the platform
    runs: on a server with a function runtime, once it has started, unless
    `functions_async_concurrency` is 0."""
    concurrency = async_concurrency(platform.settings)
    pool = platform.functions
    if pool is None or concurrency == 0:
        yield
        return
    from roost.services.functions.runner import AsyncRunner

    runner = AsyncRunner(platform, concurrency)

    async def start_when_ready() -> None:
        if await pool.ready():
            runner.start()

    starting = asyncio.create_task(start_when_ready())
    try:
        yield
    finally:
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        await runner.close()


@asynccontextmanager
async def _triggers(platform: Platform) -> AsyncIterator[None]:
    """Trigger events delivered, cron ticks fired and the trigger outbox swept here while the
    platform runs (unless `triggers_concurrency` is 0)."""
    if platform.settings.triggers_concurrency == 0:
        yield
        return
    from roost.services.triggers.cron import Scheduler
    from roost.services.triggers.delivery import Deliverer
    from roost.services.triggers.outbox import Sweeper

    deliverer = Deliverer(platform, platform.settings.triggers_concurrency)
    scheduler = Scheduler(platform)
    sweeper = Sweeper(platform)
    deliverer.start()
    scheduler.start()
    sweeper.start()
    try:
        yield
    finally:
        await sweeper.close()
        await scheduler.close()
        await deliverer.close()


def async_concurrency(settings: Settings) -> int:
    """How many async invocations a process of these settings runs at once."""
    if settings.functions_async_concurrency is None:
        return settings.functions_pool_size
    return settings.functions_async_concurrency


async def _close(platform: Platform) -> None:
    """Close every backend; one that fails to close does not keep the others open."""
    closers = (
        platform.db.close,
        platform.blobs.close,
        platform.kv.close,
        platform.queues.close,
        platform.streams.close,
        platform.bus.close,
        platform.limiter.close,  # last: the doors' limits report through it until they close
    )
    for close in closers:
        try:
            await close()
        except Exception:
            logger.warning("could not close a backend cleanly", exc_info=True)
