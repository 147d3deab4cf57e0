"""CB Dominus on Roost: `dominus` (the module-level client) and `AsyncDominus`.

Namespaces as Dominus has them: `secrets`, `db` (and `secure`), `redis`, `files`, `auth`,
`ddl`, `logs`, `portal`, `courier`, `health`, and the root `get` / `upsert`. Each call goes to
the native client's namespace; `files`, `logs` and `health` are the native ones unchanged.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar

from roost.client._async.client import AsyncClient
from roost.client._async.health import AsyncHealth
from roost.client._async.logs import AsyncLogs
from roost.client._async.storage import AsyncFiles
from roost.compat._async.dominus_auth import AsyncGuardian, AsyncPortal
from roost.compat._async.dominus_courier import AsyncCourier
from roost.compat._async.dominus_data import (
    AsyncDominusDb,
    AsyncDominusDdl,
    AsyncDominusRedis,
    AsyncDominusSecrets,
)
from roost.compat._core.default import LoopLocal
from roost.compat._core.dominus import client_options, tenant_of


class AsyncConnection:
    """What `AsyncDominus` holds per event loop: the native client (the PSK's), the user
    `portal.login` signed in, if any (and the client `portal.switch_tenant` made of it), and
    the PSK's tenant once known."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.user: AsyncClient | None = None
        self.signed_in: AsyncClient | None = None  # what `portal.login` gave: switches start there
        self._home: AsyncClient | None = None

    async def home(self) -> AsyncClient:
        """The native client naming its credential's tenant: calls that carry no credential
        (sign-in, sign-up, password reset, token checks) would otherwise go to `default`.
        Asks the server once (`auth.whoami`) unless the client was given a tenant."""
        if self._home is None:
            client = self.client
            if client.config.tenant is None and client.is_authenticated:
                client = client._in_tenant((await client.auth.whoami())["tenant"])
            self._home = client
        return self._home


class AsyncDominus:
    """A Dominus client on Roost. `token` (else `DOMINUS_TOKEN`) is a Roost API key (Dominus'
    PSK) or access token; `options` are the native client's (`api_url`, `tenant`, ...; unset
    ones come from `ROOST_*`). Settings are read at the first call, and an async client keeps
    one connection pool per event loop.

    Example:
        value = await dominus.get("DATABASE_URL")
    """

    MODE: ClassVar[str] = "async"

    def __init__(self, token: str | None = None, **options: Any) -> None:
        self._token = token
        self._options = options
        self._connections = LoopLocal(self._connect, per_loop=self.MODE == "async")

    def _connect(self) -> AsyncConnection:
        return AsyncConnection(AsyncClient(**client_options(self._token, self._options)))

    @property
    def connection(self) -> AsyncConnection:
        return self._connections.get()

    @property
    def native(self) -> AsyncClient:
        """The Roost client underneath, for what Dominus has no call for."""
        return self.connection.client

    def in_schema(self, schema: str | None) -> AsyncClient:
        """The native client for a Dominus schema (`tenant_acme`: tenant `acme`)."""
        tenant = tenant_of(schema)
        return self.native if tenant is None else self.native._in_tenant(tenant)

    # -- namespaces ---------------------------------------------------------------------------

    @cached_property
    def secrets(self) -> AsyncDominusSecrets:
        """Secrets: `list`, `get`, `upsert`, `delete`."""
        return AsyncDominusSecrets(self)

    @cached_property
    def db(self) -> AsyncDominusDb:
        """Rows of tables, in the credential's tenant or another `schema=`."""
        return AsyncDominusDb(self)

    @property
    def secure(self) -> AsyncDominusDb:
        """The same as `db`: a secure table refuses calls without `reason=` and `actor=`."""
        return self.db

    @cached_property
    def redis(self) -> AsyncDominusRedis:
        """The KV cache: values, counters, hashes, locks."""
        return AsyncDominusRedis(self)

    @property
    def files(self) -> AsyncFiles:
        """Files by id in categories (buckets): Roost's `client.files`."""
        return self.native.files

    @cached_property
    def auth(self) -> AsyncGuardian:
        """Users, roles, scopes, tenants and tokens (Guardian)."""
        return AsyncGuardian(self)

    @cached_property
    def ddl(self) -> AsyncDominusDdl:
        """Tables, columns and tenants from categories."""
        return AsyncDominusDdl(self)

    @property
    def logs(self) -> AsyncLogs:
        """Structured logs: Roost's `client.logs`."""
        return self.native.logs

    @cached_property
    def portal(self) -> AsyncPortal:
        """Sign-in of users, their sessions, profile and navigation."""
        return AsyncPortal(self)

    @cached_property
    def courier(self) -> AsyncCourier:
        """Mail from templates."""
        return AsyncCourier(self)

    @property
    def health(self) -> AsyncHealth:
        """Whether the server and its backends answer: Roost's `client.health`."""
        return self.native.health

    async def get(self, key: str) -> str:
        """The value of a secret.

        Example:
            value = await dominus.get("API_KEY")
        """
        return await self.native.get(key)

    async def upsert(self, key: str, value: str, comment: str = "") -> dict[str, Any]:
        """Create a secret or give it a new value.

        Example:
            await dominus.upsert("API_KEY", "new-value", comment="rotated")
        """
        return await self.native.upsert(key, value, comment=comment)

    async def close(self) -> None:
        """Close this event loop's connections; the next call opens new ones, reading the
        settings again."""
        connection = self._connections.forget()
        if connection is not None:
            await connection.client.close()

    async def __aenter__(self) -> AsyncDominus:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


dominus = AsyncDominus()
"""The module-level client of Dominus code (`from dominus import dominus`)."""
