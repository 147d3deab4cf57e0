"""Server settings, read from `ROOST_*` environment variables and `.env`, checked at start.

`Settings` is a frozen `msgspec.Struct` whose fields carry their bounds and descriptions
(`msgspec.Meta`); `load_settings` reads and checks them. Not pydantic-settings: importing
pydantic and building the model took ~15% of `roost serve`'s start-up, for what is a loop
over the fields here (the variables and `.env` read as the SDK reads them, one
`msgspec.convert` per field so that every bad value is named at once).
"""

from __future__ import annotations

import base64
import os
import secrets
import stat
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import msgspec
from msgspec import Meta

from roost._environment import roost_variables
from roost.errors import ConfigurationError

Seconds = Annotated[int, Meta(ge=1, le=10 * 365 * 86400)]


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the server can be told. Each field is `ROOST_<NAME>` in the environment.
    Made by `load_settings`, which checks every value (the constructor checks none)."""

    data_dir: Path = Path("roost-data")
    database_url: (
        Annotated[
            str,
            Meta(
                description="sqlite+aiosqlite:///path or postgresql://...; default: SQLite in "
                "data_dir"
            ),
        ]
        | None
    ) = None
    storage_url: (
        Annotated[
            str,
            Meta(
                description="file:///path or s3://[key:secret@]bucket?endpoint=...; default "
                "data_dir/files"
            ),
        ]
        | None
    ) = None
    redis_url: (
        Annotated[
            str,
            Meta(
                pattern=r"^rediss?://",
                description="with it, KV, queues, streams and pub/sub live in Redis (for replicas)",
            ),
        ]
        | None
    ) = None
    smtp_url: (
        Annotated[
            str,
            Meta(
                pattern=r"^smtps?://",
                description="smtp://user:password@host:587 or smtps://host:465; without it mail "
                "goes to the outbox (development)",
            ),
        ]
        | None
    ) = None
    mail_from: Annotated[
        str, Meta(max_length=320, description="the sender of mail that names none")
    ] = "Roost <no-reply@localhost>"
    mail_max_bytes: Annotated[
        int,
        Meta(
            ge=1024,
            le=16 * 1024 * 1024,
            description="the largest a rendered mail (subject, text and html together, in bytes) "
            "may be; a template and model that would render larger are refused before sending",
        ),
    ] = 256 * 1024
    access_log: Annotated[
        bool,
        Meta(
            description="write one JSON line per HTTP request (request id, operation, status, "
            "duration) to the `roost.access` logger"
        ),
    ] = False
    metrics_listen: (
        Annotated[
            str,
            Meta(
                pattern=r"^[^\s:]*:[0-9]{1,5}$",
                description="host:port of a separate listener that serves /metrics to anyone who "
                "reaches it (keep it private); without it /metrics on the API port asks for the "
                "metrics:read scope of the default tenant",
            ),
        ]
        | None
    ) = None
    tracing: Annotated[
        bool,
        Meta(
            description="trace requests with OpenTelemetry (needs `roost[tracing]`; configured "
            "by the standard OTEL_* variables)"
        ),
    ] = False
    kv_min_ttl: Annotated[int, Meta(ge=1)] | None = None
    kv_max_ttl: Annotated[int, Meta(ge=1)] | None = None
    kv_near_cache_bytes: Annotated[
        int,
        Meta(
            ge=0,
            description="with redis_url: memory each server keeps for KV values it has read, kept "
            "fresh by Redis' invalidations (0: every read goes to Redis)",
        ),
    ] = 64 * 1024 * 1024
    kv_max_value_bytes: Annotated[int, Meta(ge=1, le=64 * 1024 * 1024)] = 1024 * 1024
    message_max_bytes: Annotated[int, Meta(ge=1, le=64 * 1024 * 1024)] = 1024 * 1024
    stream_max_events: Annotated[int, Meta(ge=1)] = 100_000
    stream_max_age: Annotated[int, Meta(ge=1)] | None = 7 * 86400
    change_feed_max_events: Annotated[int, Meta(ge=1)] = 10_000
    change_feed_max_age: Annotated[int, Meta(ge=1)] | None = 86400
    logs_max_age: Annotated[
        Seconds, Meta(description="how long structured log entries are kept (seconds)")
    ] = 30 * 86400
    ws_max_in_flight: Annotated[int, Meta(ge=1, le=100_000)] = 1000
    ws_max_outbound_bytes: Annotated[int, Meta(ge=1024)] = 16 * 1024 * 1024
    ws_reidentify_seconds: Annotated[
        float,
        Meta(
            ge=0,
            le=60,
            description="how long a WebSocket connection trusts the credential it checked last "
            "before it checks it again for the next call",
        ),
    ] = 1.0
    ws_credential_watch_seconds: Annotated[
        float,
        Meta(
            gt=0,
            le=3600,
            description="how often a WebSocket connection with subscriptions checks that its "
            "credential still holds (revoked, expired or disabled: the connection is closed)",
        ),
    ] = 5.0

    # Noisy neighbours (server/limits.py). A principal is the user a credential acts for (an
    # API key counts as its owner; an anonymous caller is its client address). Connections,
    # subscriptions and calls in flight are counted per server process; rates across replicas.
    max_subscriptions_per_connection: Annotated[
        int, Meta(ge=1, description="live subscriptions one WebSocket connection may hold")
    ] = 1000
    max_subscriptions_per_principal: Annotated[
        int, Meta(ge=0, description="live subscriptions of one principal, per server (0: no limit)")
    ] = 5000
    max_subscriptions_per_tenant: Annotated[
        int, Meta(ge=0, description="live subscriptions of one tenant, per server (0: no limit)")
    ] = 10_000
    max_connections_per_principal: Annotated[
        int,
        Meta(ge=0, description="WebSocket connections of one principal, per server (0: no limit)"),
    ] = 256
    max_connections_per_tenant: Annotated[
        int, Meta(ge=0, description="WebSocket connections of one tenant, per server (0: no limit)")
    ] = 4096
    max_in_flight_per_principal: Annotated[
        int,
        Meta(
            ge=0,
            description="calls of one principal running at once, all doors, per server (0: no "
            "limit)",
        ),
    ] = 2000
    max_in_flight_per_tenant: Annotated[
        int,
        Meta(
            ge=0,
            description="calls of one tenant running at once, all doors, per server (0: no limit)",
        ),
    ] = 10_000
    rate_per_principal: Annotated[
        int,
        Meta(
            ge=0,
            description="calls one principal may make per rate_window, over all replicas (0: no "
            "limit; the right figure depends on the hardware, so none is guessed)",
        ),
    ] = 0
    rate_per_tenant: Annotated[
        int,
        Meta(
            ge=0,
            description="calls one tenant may make per rate_window, over all replicas (0: no "
            "limit)",
        ),
    ] = 0
    rate_window: Annotated[
        float,
        Meta(
            ge=0.1,
            le=3600,
            description="the window of rate_per_principal and rate_per_tenant (seconds)",
        ),
    ] = 1.0
    # a tenant's schema is `<prefix>_<tenant>`: 22 + 1 + 40 (the longest tenant name) = 63,
    # PostgreSQL's longest identifier
    pg_schema_prefix: Annotated[
        str,
        Meta(
            pattern=r"^[a-z][a-z0-9_]{0,21}$",
            description="PostgreSQL: the schemas' prefix (at most 22 characters, so that every "
            "tenant's schema name fits PostgreSQL's 63)",
        ),
    ] = "roost"
    pg_allow_superuser: Annotated[
        bool,
        Meta(
            description="let the server connect to PostgreSQL as a superuser; without it the "
            "server refuses to start as one (it needs LOGIN, CREATEROLE and CREATE on "
            "the database)"
        ),
    ] = False
    secret_key: (
        Annotated[
            str, Meta(min_length=32, description="JWT signing key; default: a key file in data_dir")
        ]
        | None
    ) = None
    master_key: (
        Annotated[
            str,
            Meta(
                description="base64 of 32 random bytes: the key that encrypts each tenant's "
                "secrets; default: a key file in data_dir (replicas must share one)"
            ),
        ]
        | None
    ) = None
    base_domain: (
        Annotated[
            str, Meta(description="with it, host `<tenant>.<base_domain>` selects the tenant")
        ]
        | None
    ) = None

    access_token_ttl: Seconds = 900
    refresh_token_ttl: Seconds = 30 * 86400
    api_key_default_ttl: Seconds | None = None
    auth_cache_seconds: Annotated[float, Meta(ge=0, le=60)] = 2.0

    auth_link_url: (
        Annotated[
            str,
            Meta(
                pattern=r"^https?://.*\{token\}",
                description="where verification and password reset mails link to, with {token} "
                "(and optionally {action}: verify_email or reset_password), e.g. "
                "https://app.example.com/auth/{action}?token={token}; without it they "
                "carry the token",
            ),
        ]
        | None
    ) = None
    public_url: (
        Annotated[
            str,
            Meta(
                pattern=r"^https?://[^/?#]+$",
                description="the URL browsers reach this server at (scheme and host, no path), "
                "e.g. https://api.example.com; sign-in with a provider needs it for "
                "its callback <public_url>/api/v1/auth/providers/<tenant>/callback",
            ),
        ]
        | None
    ) = None
    auth_redirect_urls: Annotated[
        list[str],
        Meta(
            description="where a sign-in with a provider may send the user back to: each entry an "
            "absolute URL that redirect_to must equal or extend by a path, query or fragment "
            "(https://app.example.com/ allows https://app.example.com/after-login)"
        ),
    ] = msgspec.field(default_factory=list)
    provider_sign_ins_per_client: Annotated[
        int, Meta(ge=1, description="provider sign-ins one client address may start in ten minutes")
    ] = 60
    anonymous_sign_ins_per_client: Annotated[
        int,
        Meta(
            ge=1,
            description="anonymous users one client address may make in an hour (where a tenant "
            "allows anonymous sign-in)",
        ),
    ] = 30
    email_verification_ttl: Seconds = 3 * 86400
    password_reset_ttl: Seconds = 3600
    allow_signup: bool = True
    admin_username: str = "admin"
    admin_email: str | None = None
    admin_password: Annotated[str, Meta(min_length=8)] | None = None

    password_hash_memory_kib: Annotated[
        int,
        Meta(
            ge=8,
            le=4 * 1024 * 1024,
            description="argon2id memory cost of password hashes, in KiB (at least 8 per lane of "
            "password_hash_parallelism); the default is OWASP's recommendation. Hashes made at "
            "another cost keep working and are remade at this one on the next sign-in",
        ),
    ] = 19456
    password_hash_time_cost: Annotated[
        int,
        Meta(ge=1, le=100, description="argon2id passes over the memory (OWASP: 2 with 19 MiB)"),
    ] = 2
    password_hash_parallelism: Annotated[
        int, Meta(ge=1, le=64, description="argon2id lanes (threads) per password hash (OWASP: 1)")
    ] = 1

    max_body_bytes: Annotated[int, Meta(ge=1024, le=1 << 34)] = 16 * 1024 * 1024
    max_header_bytes: Annotated[
        int,
        Meta(
            ge=4096,
            le=16 * 1024 * 1024,
            description="bytes a request's line and headers may take (also a WebSocket handshake); "
            "past it the server answers 431 and closes the connection",
        ),
    ] = 64 * 1024
    max_header_count: Annotated[
        int,
        Meta(
            ge=16,
            le=10_000,
            description="headers a request may carry; past it 431 and the connection closes",
        ),
    ] = 100
    login_failures_per_account: Annotated[
        int,
        Meta(
            ge=1,
            description="sign-in attempts that may fail for one account from one client address "
            "in login_failure_window (a success clears them)",
        ),
    ] = 5
    login_failures_per_account_global: Annotated[
        int,
        Meta(
            ge=1,
            description="sign-in attempts that may fail for one account from all addresses "
            "together in login_failure_window; larger than login_failures_per_account, so that "
            "others cannot lock the owner out at the low limit",
        ),
    ] = 100
    login_failures_per_address: Annotated[int, Meta(ge=1)] = 30
    mails_per_address: Annotated[
        int,
        Meta(
            ge=1,
            description="auth mails (verification, reset, account notice) one address may get of "
            "each kind in an hour; past it none is sent",
        ),
    ] = 5
    mails_per_client: Annotated[
        int,
        Meta(
            ge=1,
            description="auth mails the calls from one client address may cause in an hour "
            "(sign-up, email change, reset, resend); past it none is sent",
        ),
    ] = 30
    login_failure_window: Seconds = 900
    idempotency_ttl: Seconds = 86400
    analytics_time_limit: Annotated[float, Meta(gt=0, le=3600)] = 10.0
    analytics_max_concurrent: Annotated[
        int,
        Meta(
            ge=1,
            le=64,
            description="analytics queries that run at once in all tenants together (SQLite: the "
            "threads of their own executor; PostgreSQL: their connections); others wait, and "
            "the wait counts against analytics_time_limit",
        ),
    ] = 2
    analytics_max_per_tenant: Annotated[
        int,
        Meta(
            ge=1,
            le=64,
            description="analytics queries of one tenant that run at once, so that one tenant "
            "cannot hold every turn of analytics_max_concurrent",
        ),
    ] = 1
    analytics_max_result_bytes: Annotated[
        int,
        Meta(
            ge=1024,
            description="bytes an analytics result may come to (counted as it is fetched; on "
            "SQLite also the longest string or blob inside the query); a larger one is refused "
            "with 413",
        ),
    ] = 8 * 1024 * 1024

    # The function runtime (roost/functions): warm sandboxed worker processes.
    functions_pool_size: Annotated[
        int,
        Meta(
            ge=1,
            le=1024,
            description="worker processes per server, each running one call at a time (warm "
            "for the function version it last ran); more calls wait their turn",
        ),
    ] = 4
    functions_max_runs_per_tenant: (
        Annotated[
            int,
            Meta(
                ge=1,
                le=1024,
                description="calls of one tenant's functions that run (or wait for a worker) at "
                "once on this server, so that one tenant cannot hold every worker; "
                "past it a call is refused with 429 (an async one waits). Default: "
                "half the pool, rounded up",
            ),
        ]
        | None
    ) = None
    functions_isolation: Annotated[
        Literal["auto", "bubblewrap", "fallback"],
        Meta(
            description="how workers are sandboxed: bubblewrap (namespaces), fallback (Landlock, "
            "seccomp, a uid of their own, resource limits; where namespaces are not allowed), "
            "or auto: bubblewrap if it works here, else the fallback"
        ),
    ] = "auto"
    functions_default_timeout: Annotated[
        float,
        Meta(
            gt=0, le=86400, description="wall time of a call of a function that declares none (s)"
        ),
    ] = 30.0
    functions_default_memory_mb: Annotated[
        int,
        Meta(
            ge=16,
            le=1024 * 1024,
            description="memory (address space, MB) a function that declares none may add to its "
            "idle worker's",
        ),
    ] = 256
    functions_max_output_bytes: Annotated[
        int,
        Meta(
            ge=1024,
            le=1 << 31,
            description="bytes one call may send back: printed and logged lines, streamed items "
            "and the result together; past it the call fails and its worker is replaced",
        ),
    ] = 10 * 1024 * 1024
    functions_max_processes: Annotated[
        int, Meta(ge=4, le=100_000, description="processes and threads a worker may have at once")
    ] = 32
    functions_tmp_bytes: Annotated[
        int,
        Meta(
            ge=1024 * 1024,
            le=1 << 40,
            description="size of a worker's private /tmp (bubblewrap: a tmpfs; the fallback "
            "bounds each file to it instead)",
        ),
    ] = 64 * 1024 * 1024
    functions_uid_base: Annotated[
        int,
        Meta(
            ge=1000,
            le=2**31 - 2**20,
            description="a server running as root runs worker N as uid and gid base + N; the "
            "range must belong to no one else on the host",
        ),
    ] = 1_500_000

    # Functions (services/functions): whether this server runs them, where the runtime
    # works, and what a deploy may send and a function declare.
    functions_enabled: Annotated[
        bool,
        Meta(
            description="start the function runtime with the server (without it, functions can "
            "be deployed and listed here, but not run)"
        ),
    ] = True
    functions_run_dir: (
        Annotated[
            Path,
            Meta(
                description="the runtime's working folder (its workers' folders and the API "
                "relay); every worker uid must be able to reach it, so not inside the "
                "data dir; default: a fresh folder in the system's temporary folder"
            ),
        ]
        | None
    ) = None
    functions_api_url: Annotated[
        str,
        Meta(
            pattern=r"^https?://",
            description="the URL a running function reaches this server at (ROOST_API_URL)",
        ),
    ] = "http://127.0.0.1:8787"
    functions_max_bundle_bytes: Annotated[
        int,
        Meta(
            ge=1024,
            le=1 << 30,
            description="bytes a function's code may take as uploaded (the zip, or the code "
            "string)",
        ),
    ] = 8 * 1024 * 1024
    functions_max_unpacked_bytes: Annotated[
        int,
        Meta(
            ge=1024,
            le=1 << 32,
            description="bytes a function's code may take once unpacked (zip bombs stop here)",
        ),
    ] = 64 * 1024 * 1024
    functions_max_files: Annotated[
        int, Meta(ge=1, le=100_000, description="files and folders a function's code may have")
    ] = 2000
    functions_max_versions: Annotated[
        int,
        Meta(
            ge=1,
            le=100_000,
            description="versions kept per function: a deploy past it deletes the oldest (its "
            "code in the blob store and unpacked on each replica); rollback reaches those kept",
        ),
    ] = 50
    functions_max_timeout: Annotated[
        float,
        Meta(gt=0, le=86400, description="the longest timeout a function may declare (seconds)"),
    ] = 900.0
    functions_max_memory_mb: Annotated[
        int, Meta(ge=16, le=1024 * 1024, description="the most memory a function may declare (MiB)")
    ] = 4096
    functions_max_result_bytes: Annotated[
        int,
        Meta(
            ge=1024,
            le=1 << 30,
            description="bytes of JSON an invocation's result may take to be kept for get_result "
            "(a larger one is still answered to a sync caller)",
        ),
    ] = 1024 * 1024
    functions_max_log_bytes: Annotated[
        int,
        Meta(
            ge=1024,
            le=1 << 30,
            description="bytes of print and logging output kept per invocation (in its result "
            "and in the logs); past it the rest is counted, not kept",
        ),
    ] = 256 * 1024

    policy_globals: Annotated[
        dict[str, Any],
        Meta(
            description="a JSON object: the globals (`G.x`, `globals.x`) every tenant's policy "
            "conditions see; a tenant's own (`policies.set_globals`) take precedence key by key"
        ),
    ] = msgspec.field(default_factory=dict)
    policy_schema_enforcement: Annotated[
        Literal["none", "warn", "reject"],
        Meta(
            description="what checks do with the JSON Schemas resource policies name (`schemas:`), "
            "as Cerbos' `schema.enforcement`: none ignores them, warn lists the problems in "
            "`validationErrors`, reject lists them and denies every action"
        ),
    ] = "none"

    # Async invocations (services/functions/queued.py): queued on the queue backend, taken
    # by the servers and `roost worker` processes of the deployment.
    functions_async_concurrency: (
        Annotated[
            int,
            Meta(
                ge=0,
                le=1024,
                description="async invocations this process takes from the queue and runs at once;"
                " 0: none (an API server that leaves them to `roost worker`); default:"
                " the pool size",
            ),
        ]
        | None
    ) = None
    functions_async_lease_seconds: Annotated[
        float,
        Meta(
            ge=1,
            le=3600,
            description="how long an async invocation is leased to the process that took it, "
            "renewed every third of it while it runs: if that process dies, another takes the "
            "invocation again and runs it once the lease runs out",
        ),
    ] = 30.0
    functions_queue: Annotated[
        str,
        Meta(
            pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
            description="the queue async invocations wait in; every server and worker of one "
            "deployment must name the same, deployments that share one Redis different ones",
        ),
    ] = "invocations"

    # Triggers (services/triggers/): events queued on the queue backend, delivered by every
    # server of the deployment to a function or a URL.
    triggers_concurrency: Annotated[
        int,
        Meta(
            ge=0,
            le=1024,
            description="trigger events this process delivers at once; 0: none (cron ticks are "
            "not fired here either)",
        ),
    ] = 8
    triggers_lease_seconds: Annotated[
        float,
        Meta(
            ge=1,
            le=3600,
            description="how long a trigger event is leased to the process delivering it, "
            "renewed while it runs: if that process dies, another delivers it once this runs out",
        ),
    ] = 60.0
    triggers_max_attempts: Annotated[
        int,
        Meta(
            ge=1,
            le=100,
            description="attempts at delivering one event before it is recorded as failed",
        ),
    ] = 6
    triggers_retry_base: Annotated[
        float,
        Meta(
            ge=0.01,
            le=3600,
            description="seconds before the first retry of a failed delivery; each retry waits "
            "up to twice as long as the one before (with full jitter), at most 10 minutes",
        ),
    ] = 2.0
    triggers_timeout: Annotated[
        float, Meta(gt=0, le=300, description="seconds a URL target has to answer one delivery")
    ] = 10.0
    triggers_tick_seconds: Annotated[
        float,
        Meta(
            ge=0.01,
            le=60,
            description="how often a process looks for cron ticks that are due (and for "
            "trigger events when nothing woke it)",
        ),
    ] = 1.0
    triggers_test_die_after_commit: Annotated[
        bool,
        Meta(
            description="FOR TESTS ONLY: the process kills itself (SIGKILL) after a write that "
            "made trigger events commits and before they are queued, to test the outbox"
        ),
    ] = False
    triggers_max_per_tenant: Annotated[
        int,
        Meta(
            ge=1,
            le=100_000,
            description="triggers one tenant may have (each write to a followed table fans out "
            "to every trigger that follows it)",
        ),
    ] = 200
    # Outgoing requests to URLs tenants choose (webhook targets; services/outbound.py)
    webhook_allow: Annotated[
        str,
        Meta(
            max_length=64 * 1024,
            description="comma-separated networks (CIDR or single addresses) and exact host names "
            "that webhooks may reach although they are not public, e.g. 10.0.0.0/8,hooks.internal; "
            "empty: public addresses only (loopback, private, link-local such as the cloud "
            "metadata service, CGNAT, unique-local, multicast and reserved addresses are refused, "
            "so that a tenant cannot reach the server's own network)",
        ),
    ] = ""

    @property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL of the control database, with the async driver named."""
        url = self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'roost.db'}"
        scheme, rest = url.split(":", 1)
        base = scheme.split("+", 1)[0]
        if base == "sqlite":
            return f"sqlite+aiosqlite:{rest}"
        return f"postgresql+asyncpg:{rest}"

    def signing_key(self) -> str:
        """The JWT key: ROOST_SECRET_KEY, else a 0600 key file made once in the data dir."""
        return self.secret_key or self._key_file("secret.key", lambda: secrets.token_urlsafe(48))

    def master_key_bytes(self) -> bytes:
        """The secrets master key: ROOST_MASTER_KEY, else a 0600 key file made once in the
        data dir (`master.key`). Either way 32 bytes, written as base64."""
        text = self.master_key or self._key_file(
            "master.key", lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        )
        try:
            key = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
        except ValueError:
            key = b""
        if len(key) != 32:
            where = "ROOST_MASTER_KEY" if self.master_key else str(self.data_dir / "master.key")
            raise ConfigurationError(
                f"{where} must be 32 bytes written as base64; make one with: python -c "
                "'import base64,os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'"
            )
        return key

    def _key_file(self, name: str, make: Callable[[], str]) -> str:
        path = self.data_dir / name
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(make())
        if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigurationError(f"{path} is readable by others; run: chmod 600 {path}")
        return path.read_text().strip()


def load_settings(**overrides: Any) -> Settings:
    """Read the settings: `overrides` (by field name), then `ROOST_<NAME>` environment
    variables, then `.env`, then the defaults. A bad value raises ConfigurationError naming
    each variable at fault (never its value: some are secrets)."""
    unknown = sorted(set(overrides) - set(Settings.__struct_fields__))
    if unknown:
        raise TypeError(f"no such setting: {', '.join(unknown)}")
    variables = roost_variables()
    values: dict[str, Any] = {}
    problems: list[str] = []
    for field in _fields():
        variable = f"ROOST_{field.name.upper()}"
        try:
            if field.name in overrides:
                given = overrides[field.name]
            elif variable in variables:
                given = _from_text(variables[variable], field.type)
            else:
                continue
            values[field.name] = msgspec.convert(given, field.type, strict=False, dec_hook=_to_path)
        except msgspec.ValidationError as exc:
            problems.append(f"{variable}: {_without_path(exc)}")
        except ValueError as exc:
            problems.append(f"{variable}: {exc}")
    problems += [f"ROOST_{name.upper()}: {message}" for name, message in _cross_checks(values)]
    if problems:
        raise ConfigurationError(f"invalid settings: {'; '.join(problems)}")
    return Settings(**values)


@cache
def _fields() -> tuple[msgspec.structs.FieldInfo, ...]:
    """The fields with their types resolved (from this module's annotations, which are text:
    ~10 ms each time on a slow machine; `serve` and the app it starts each read settings)."""
    return msgspec.structs.fields(Settings)


def is_given(name: str) -> bool:
    """Whether setting `name` comes from the environment or `.env` (not its default)."""
    return f"ROOST_{name.upper()}" in roost_variables()


def _from_text(text: str, kind: Any) -> Any:
    """A variable's text as what `msgspec.convert` takes for `kind`: JSON for a list or a
    mapping, the usual words for a bool, a number's text without spaces around it, else the
    text itself."""
    bare = {arg for arg in get_args(kind) if arg is not type(None)} if get_origin(kind) else {kind}
    bare = {get_args(arg)[0] if get_origin(arg) is Annotated else arg for arg in bare}
    if any(get_origin(arg) in (list, dict) or arg in (list, dict) for arg in bare):
        try:
            return msgspec.json.decode(text)
        except msgspec.DecodeError:
            raise ValueError("must be JSON") from None
    if bool in bare:
        word = text.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    if bare & {int, float}:
        return text.strip()  # a number written with spaces around it
    return text


_TRUE = frozenset({"1", "true", "yes", "on", "y", "t"})
_FALSE = frozenset({"0", "false", "no", "off", "n", "f"})


def _to_path(kind: type, value: Any) -> Any:
    if kind is Path and isinstance(value, str | os.PathLike):
        return Path(value)
    raise NotImplementedError


def _without_path(error: msgspec.ValidationError) -> str:
    """msgspec's message without the ` - at `$...`` it adds (the variable is named)."""
    return str(error).split(" - at `$", 1)[0]


def _cross_checks(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What a field's own bounds cannot say: (setting, problem) pairs."""
    problems = []
    lanes = values.get("password_hash_parallelism", _DEFAULTS.password_hash_parallelism)
    memory = values.get("password_hash_memory_kib", _DEFAULTS.password_hash_memory_kib)
    if isinstance(lanes, int) and isinstance(memory, int) and memory < 8 * lanes:
        problems.append(
            (
                "password_hash_parallelism",
                f"needs password_hash_memory_kib of at least 8 per lane ({8 * lanes}); "
                f"it is {memory}",
            )
        )
    if isinstance(allow := values.get("webhook_allow"), str):
        from roost.services.outbound import AllowList  # here: services import settings

        try:
            AllowList.parse(allow)
        except ValueError as exc:  # it names the entry
            problems.append(("webhook_allow", str(exc)))
    storage = values.get("storage_url")
    if isinstance(storage, str) and not storage.startswith(("file://", "s3://")):
        problems.append(("storage_url", "must start with file:// or s3://"))
    database = values.get("database_url")
    if isinstance(database, str):
        scheme = database.split(":", 1)[0].split("+", 1)[0]
        if scheme not in ("sqlite", "postgresql", "postgres"):
            problems.append(("database_url", "must start with sqlite:// or postgresql://"))
    return problems


_DEFAULTS = Settings()
