"""Noisy neighbours: how much of the server one principal, or one tenant, may take.

One `Limits` (the dispatcher's) serves every door: calls are admitted in `Dispatcher.invoke`,
which every call of every door goes through, and the WebSocket door holds its connections and
subscriptions here. A refusal is a `RateLimitError` (429) whose `details` name the limit
(`per`: principal, tenant or connection; `limit`; `setting`), so a tenant at its limit is
refused at once while the others go on.

* A principal is the user a credential acts for (an API key counts as its owner, so more keys
  buy no more room); an anonymous caller is its client address.
* Calls in flight, WebSocket connections and subscriptions are held by one server process and
  counted there: their limits are per server process.
* Rates (calls per `rate_window`) hold across replicas, in fixed windows aligned to the clock
  and counted by the platform's rate limiter backend (Redis with `ROOST_REDIS_URL`). A process
  admits calls against what it last heard of the window's total plus its own calls since, and
  reports its calls in one pipelined round trip at most every `_REPORT` seconds: a call pays a
  dict lookup, never a round trip, and replicas together may overshoot by what they admit
  between two reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import msgspec

from roost.backends.ratelimit import RateLimiter
from roost.errors import RateLimitError
from roost.services.context import Context
from roost.settings import Settings

logger = logging.getLogger("roost.limits")

_REPORT = 0.05  # seconds between two reports of this process' calls to the shared counters
_PRUNE_AT = 4096  # principals counted (at 0 included) before the counts at 0 are dropped


def principal_of(ctx: Context) -> str:
    """Whom per-principal limits count: the user (whichever credential), else the address.
    Worked out once per Context (a WebSocket connection's serves each of its calls)."""
    who = ctx.limits_key
    if who is None:
        if ctx.principal is not None:
            who = f"{ctx.tenant}/user:{ctx.principal.user_id}"
        else:
            who = f"{ctx.tenant}/address:{ctx.client_address}"
        ctx.limits_key = who
    return who


def refusal(
    code: str, message: str, per: str, limit: int, setting: str, retry_after: float | None = None
) -> RateLimitError:
    """The refusal of one limit, with the details a client needs to tell which."""
    return RateLimitError(
        f"{message} (limit {limit} per {per}, ROOST_{setting.upper()})",
        code=code,
        retry_after=retry_after,
        details={"per": per, "limit": limit, "setting": setting},
    )


class _Held(msgspec.Struct):
    """How many of one thing (calls in flight, connections, subscriptions) each principal and
    each tenant holds, against a limit for each (0: none).

    Every call takes and gives back here, so both are a few dict operations and nothing more:
    a count that falls to 0 stays in its dict (no removal and insertion again per call), and
    such entries are dropped only when a dict has grown past `prune_at` keys."""

    code: str
    what: str
    per_principal: int
    per_tenant: int
    setting: str
    retry_after: float | None = None
    principals: dict[str, int] = msgspec.field(default_factory=dict)
    tenants: dict[str, int] = msgspec.field(default_factory=dict)
    prune_at: int = _PRUNE_AT

    def take(self, who: str, tenant: str, n: int) -> None:
        principals, tenants = self.principals, self.tenants
        mine, theirs = principals.get(who, 0) + n, tenants.get(tenant, 0) + n
        if self.per_principal and mine > self.per_principal:
            raise self._refusal("principal", self.per_principal)
        if self.per_tenant and theirs > self.per_tenant:
            raise self._refusal("tenant", self.per_tenant)
        principals[who], tenants[tenant] = mine, theirs
        if len(principals) > self.prune_at:
            self.prune()

    def give_back(self, who: str, tenant: str, n: int) -> None:
        # what `take` counted is there still: only counts at 0 are ever dropped
        self.principals[who] -= n
        self.tenants[tenant] -= n

    def held(self) -> int:
        """How many are held on this server, all tenants together."""
        return sum(self.tenants.values())

    def prune(self) -> None:
        """Drop the counts at 0 (principals that held something once: anonymous callers come
        by address, so there is no end to them)."""
        self.principals = {k: v for k, v in self.principals.items() if v}
        self.tenants = {k: v for k, v in self.tenants.items() if v}
        self.prune_at = max(_PRUNE_AT, 2 * len(self.principals))

    def _refusal(self, per: str, limit: int) -> RateLimitError:
        return refusal(
            self.code,
            f"this {per} has {limit} {self.what} on this server already",
            per,
            limit,
            f"{self.setting}_per_{per}",
            self.retry_after,
        )


class _Window:
    """One key's fixed window: its number, the total the shared counter last reported (every
    replica's calls) and this process' calls not reported yet."""

    __slots__ = ("mine", "number", "total")

    def __init__(self, number: int) -> None:
        self.number, self.total, self.mine = number, 0, 0


class Rates:
    """Calls per fixed window, per key, over every replica (see the module docstring)."""

    def __init__(self, limiter: RateLimiter, window: float) -> None:
        self._limiter = limiter
        self._window = window
        self._windows: dict[str, _Window] = {}
        self._pruned = 0  # the window number at which stale windows were last dropped
        self._reporter: asyncio.Task[None] | None = None

    def window(self, key: str, now: float) -> _Window:
        """The current window of `key`: admit a call if `total + mine` leaves room, and
        count it in `mine` (then call `report_soon`)."""
        number = int(now // self._window)
        window = self._windows.get(key)
        if window is None or window.number != number:
            window = self._windows[key] = _Window(number)
        return window

    def until_next(self, window: _Window, now: float) -> float:
        """Seconds until the window after `window` starts."""
        return (window.number + 1) * self._window - now

    def report_soon(self) -> None:
        """Report the calls counted in `mine` within `_REPORT` seconds."""
        if self._reporter is None:
            self._reporter = asyncio.get_running_loop().create_task(self._report_while_due())

    async def close(self) -> None:
        if self._reporter is not None:
            self._reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reporter

    async def _report_while_due(self) -> None:
        try:
            while True:
                await asyncio.sleep(_REPORT)
                if not await self._report():
                    return
        finally:
            self._reporter = None

    async def _report(self) -> bool:
        """Add this process' calls to the shared counters and learn their totals; False if
        there was nothing to report."""
        due = {key: w for key, w in self._windows.items() if w.mine}
        self._prune()
        if not due:
            return False
        sent = {f"{key}:{w.number}": w.mine for key, w in due.items()}
        try:
            totals = await self._limiter.count(sent, ttl=2 * self._window + 1)
        except Exception:  # the backend is away: keep counting locally, report again later
            logger.warning("could not report call rates; counting locally", exc_info=True)
            return True
        for key, window in due.items():
            name = f"{key}:{window.number}"
            if self._windows.get(key) is window:  # still the current window
                window.mine -= sent[name]
                window.total = totals[name]
        return True

    def _prune(self) -> None:
        number = int(time.time() // self._window)
        if number != self._pruned:
            self._pruned = number
            self._windows = {k: w for k, w in self._windows.items() if w.number >= number}


class Limits:
    """Every limit of one server process (see the module docstring)."""

    def __init__(self, settings: Settings, limiter: RateLimiter) -> None:
        self._settings = settings
        self._rates = Rates(limiter, settings.rate_window)
        self._rated = bool(settings.rate_per_principal or settings.rate_per_tenant)
        self.calls = 0  # calls under way, of every caller
        self._in_flight = _Held(
            "too_many_in_flight",
            "calls in flight",
            settings.max_in_flight_per_principal,
            settings.max_in_flight_per_tenant,
            "max_in_flight",
            retry_after=0.1,
        )
        self._connections = _Held(
            "too_many_connections",
            "WebSocket connections",
            settings.max_connections_per_principal,
            settings.max_connections_per_tenant,
            "max_connections",
        )
        self._subscriptions = _Held(
            "too_many_subscriptions",
            "subscriptions",
            settings.max_subscriptions_per_principal,
            settings.max_subscriptions_per_tenant,
            "max_subscriptions",
        )

    def enter(self, ctx: Context, n: int = 1) -> str:
        """Admit `n` calls of the caller (calls in flight, then rate), or raise RateLimitError.
        Returns the principal to hand `leave` when the calls have answered."""
        who = ctx.limits_key or principal_of(ctx)
        tenant = ctx.tenant
        in_flight = self._in_flight
        # `_Held.take` written out: every call of every door is admitted here
        principals, tenants = in_flight.principals, in_flight.tenants
        mine, theirs = principals.get(who, 0) + n, tenants.get(tenant, 0) + n
        if (in_flight.per_principal and mine > in_flight.per_principal) or (
            in_flight.per_tenant and theirs > in_flight.per_tenant
        ):
            in_flight.take(who, tenant, n)  # raises: it says which limit
        principals[who], tenants[tenant] = mine, theirs
        if len(principals) > in_flight.prune_at:
            in_flight.prune()
        if self._rated:
            try:
                self._take_rate(who, tenant, n)
            except RateLimitError:
                in_flight.give_back(who, tenant, n)
                raise
        self.calls += n
        return who

    def quiet(self) -> bool:
        """Whether at most one call is under way in this process (see `Database.run`'s
        `small`: writes that arrive together commit together, one alone runs inline)."""
        return self.calls <= 1

    def leave(self, who: str, tenant: str, n: int = 1) -> None:
        """`n` calls admitted by `enter` have answered."""
        # `_Held.give_back` written out: every call of every door leaves through here
        in_flight = self._in_flight
        in_flight.principals[who] -= n
        in_flight.tenants[tenant] -= n
        self.calls -= n

    def hold_connection(self, ctx: Context) -> Callable[[], None]:
        """Count a WebSocket connection of the caller, or raise RateLimitError; returns how to
        let go of it (safe to call more than once)."""
        return self._hold(self._connections, ctx)

    def hold_subscription(self, ctx: Context) -> Callable[[], None]:
        """Count a live subscription of the caller, or raise RateLimitError; returns how to
        let go of it (safe to call more than once)."""
        return self._hold(self._subscriptions, ctx)

    def subscriptions(self) -> int:
        """Live subscriptions held on this server."""
        return self._subscriptions.held()

    def connections(self) -> int:
        """WebSocket connections held on this server."""
        return self._connections.held()

    async def close(self) -> None:
        await self._rates.close()

    def _take_rate(self, who: str, tenant: str, n: int) -> None:
        rates, settings, now = self._rates, self._settings, time.time()
        checks = [
            (per, limit, rates.window(key, now))
            for per, key, limit in (
                ("principal", f"principal:{who}", settings.rate_per_principal),
                ("tenant", f"tenant:{tenant}", settings.rate_per_tenant),
            )
            if limit
        ]
        for per, limit, window in checks:
            if window.total + window.mine + n > limit:
                wait = rates.until_next(window, now)
                raise refusal(
                    "rate_limited",
                    f"this {per} made its calls of this {settings.rate_window:g} s window; "
                    f"retry in {wait:.1f} s",
                    per,
                    limit,
                    f"rate_per_{per}",
                    retry_after=wait,
                )
        for _, _, window in checks:
            window.mine += n
        rates.report_soon()

    @staticmethod
    def _hold(held: _Held, ctx: Context) -> Callable[[], None]:
        who, tenant = principal_of(ctx), ctx.tenant
        held.take(who, tenant, 1)
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                held.give_back(who, tenant, 1)

        return release
