"""Credentials: password hashes, opaque tokens, access JWTs and scope matching.

Opaque tokens (API keys, session tokens, refresh tokens) read `<kind>_<tenant>_<id>_<secret>`:
the tenant and row id let the server find the row without a scan, the secret is random, and
only the SHA-256 of the whole token is stored (the secret has 256 bits, so a slow hash would
add nothing). Passwords are argon2id, at the cost the settings give (`Passwords`).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar

import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from roost.backends.ratelimit import RateLimiter
from roost.errors import AuthenticationError, RateLimitError

_T = TypeVar("_T")

OpaqueKind = Literal["rak", "rst", "rrt", "rev", "rpr", "r2f", "rml", "rmi"]
"""rak: API key, rst: session token, rrt: refresh token, r2f: second-factor challenge, rml:
magic sign-in link."""


def _cores() -> int:
    return min(4, os.cpu_count() or 1)


@functools.cache
def _threads() -> ThreadPoolExecutor:
    """The process' threads for password hashes, one per core (at most 4): shared by every
    platform of the process (tests run hundreds), so their threads do not pile up."""
    return ThreadPoolExecutor(_cores(), thread_name_prefix="roost-hash")


class Passwords:
    """Hashes and checks passwords with argon2id at the configured cost.

    argon2 writes its parameters into each hash, so a hash made at another cost still
    verifies; `needs_rehash` says when it should be made again at this cost.
    """

    def __init__(
        self, memory_kib: int, time_cost: int, parallelism: int, concurrency: int | None = None
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
        )
        self._dummy: str | None = None
        # Hashes run on the process' hashing threads, at most `concurrency` at once (one per
        # core by default): a burst of sign-ins then queues here instead of holding
        # memory_kib each at the same time and crowding out the default executor's work.
        self.concurrency = concurrency or _cores()
        self._turns = asyncio.Semaphore(self.concurrency)

    async def hash(self, password: str) -> str:
        """The argon2id hash of a password (computed off the event loop)."""
        return await self._off_loop(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether `password` matches; with no hash (no such user) it still spends the time
        of a verification at this cost, so the answer does not tell which users exist."""
        return await self._off_loop(self._verify, password_hash, password)

    async def _off_loop(self, work: Callable[..., _T], *args: object) -> _T:
        async with self._turns:
            return await asyncio.get_running_loop().run_in_executor(_threads(), work, *args)

    def needs_rehash(self, password_hash: str) -> bool:
        """Whether a stored hash was made at another cost (or with another algorithm)."""
        return self._hasher.check_needs_rehash(password_hash)

    def _verify(self, password_hash: str | None, password: str) -> bool:
        try:
            matches = self._hasher.verify(password_hash or self._dummy_hash(), password)
        except (VerificationError, InvalidHashError):
            return False
        return matches and bool(password_hash)

    def _dummy_hash(self) -> str:
        # made on first use, not at import: every CLI start and test collection imports this
        if self._dummy is None:
            self._dummy = self._hasher.hash("a password nobody has")
        return self._dummy


async def refuse_if_limited(
    limiter: RateLimiter, limits: Sequence[tuple[str, int]], window: float, what: str
) -> None:
    """RateLimitError ("too many <what>", with Retry-After) if any (key, limit) is reached."""
    for key, limit in limits:
        wait = await limiter.blocked_for(key, limit, window)
        if wait is not None:
            raise _too_many(what, wait)


async def take_or_refuse(
    limiter: RateLimiter,
    limits: Sequence[tuple[str, int]],
    window: float,
    what: str,
    event: str,
) -> None:
    """Count `event` against every (key, limit) before the work it limits is done; when any
    limit is reached it counts nowhere and RateLimitError ("too many <what>") is raised."""
    taken: list[str] = []
    for key, limit in limits:
        wait = await limiter.take(key, limit, window, event)
        if wait is not None:
            for done in taken:  # a refused attempt must not extend the others' lockouts
                await limiter.release(done, event)
            raise _too_many(what, wait)
        taken.append(key)


def _too_many(what: str, wait: float) -> RateLimitError:
    return RateLimitError(
        f"too many {what}; try again in {int(wait) + 1} s", retry_after=float(int(wait) + 1)
    )


def new_id() -> str:
    return secrets.token_hex(12)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class OpaqueToken(msgspec.Struct, frozen=True):
    kind: OpaqueKind
    tenant: str
    id: str
    token: str

    @property
    def hash(self) -> str:
        return token_hash(self.token)

    @property
    def display_prefix(self) -> str:
        return f"{self.kind}_{self.tenant}_{self.id}"


def make_opaque(kind: OpaqueKind, tenant: str, row_id: str) -> OpaqueToken:
    return OpaqueToken(
        kind, tenant, row_id, f"{kind}_{tenant}_{row_id}_{secrets.token_urlsafe(32)}"
    )


def parse_opaque(token: str, kind: OpaqueKind) -> OpaqueToken:
    """Split an opaque token; one that is not of `kind` is refused as invalid credentials."""
    parts = token.split("_", 3)
    if len(parts) != 4 or parts[0] != kind or not all(parts):
        raise AuthenticationError(f"malformed {_KIND_NAMES[kind]}", code="invalid_credentials")
    return OpaqueToken(kind, parts[1], parts[2], token)


_KIND_NAMES = {
    "rak": "API key",
    "rst": "session token",
    "rrt": "refresh token",
    "rev": "email verification token",
    "rpr": "password reset token",
    "r2f": "second-factor challenge",
    "rml": "sign-in link token",
    "rmi": "membership invitation",
}


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class AccessClaims(msgspec.Struct, frozen=True):
    user_id: str
    tenant: str
    session_id: str
    expires_at: float


class AccessTokens:
    """Signs and reads the short-lived access JWTs (HS256). `clock` (wall time) stamps and
    expires them; it is read here rather than by PyJWT, so that a server's clock decides."""

    def __init__(self, key: str, ttl: int, *, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self.ttl = ttl
        self.clock = clock
        self._derived: dict[str, bytes] = {}  # purpose -> key (requests derive them often)

    def derive(self, purpose: str) -> bytes:
        """A key for another use (signed links, ...), derived so the signing key is not shared."""
        derived = self._derived.get(purpose)
        if derived is None:
            derived = self._derived[purpose] = hmac.digest(
                self._key.encode(), f"roost:{purpose}".encode(), "sha256"
            )
        return derived

    def issue(
        self, user_id: str, tenant: str, session_id: str, ttl: int | None = None
    ) -> tuple[str, float]:
        now = int(self.clock())
        exp = now + (ttl or self.ttl)
        claims = {
            "sub": user_id,
            "tnt": tenant,
            "sid": session_id,
            "typ": "access",
            "iat": now,
            "exp": exp,
            "iss": "roost",
        }
        import jwt  # PyJWT and cryptography: 70 ms of start-up, loaded on first use

        return jwt.encode(claims, self._key, algorithm="HS256"), float(exp)

    def read(self, token: str) -> AccessClaims:
        """The claims of a valid token; raises AuthenticationError saying why it is not."""
        import jwt  # loaded on first use (start-up)

        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                issuer="roost",
                # Expiry is checked below on our clock. `iat` is not checked at all: a
                # replica whose clock runs a second behind the issuer's would refuse the
                # token as "not yet valid".
                options={
                    "require": ["exp", "sub", "tnt", "sid"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidTokenError:
            raise AuthenticationError("invalid access token", code="invalid_credentials") from None
        expires_at = claims["exp"]
        if type(expires_at) is not int:  # as PyJWT checks it when it checks expiry
            raise AuthenticationError("invalid access token", code="invalid_credentials")
        if claims.get("typ") != "access":
            raise AuthenticationError("not an access token", code="invalid_credentials")
        if expires_at <= self.clock():
            raise AuthenticationError(
                "access token expired; refresh it or sign in again", code="token_expired"
            )
        return AccessClaims(
            str(claims["sub"]), str(claims["tnt"]), str(claims["sid"]), float(expires_at)
        )


def scope_allows(granted: Iterable[str], needed: str) -> bool:
    """Whether a set of scopes grants `needed` (`*` grants all, `module:*` a whole module)."""
    if not isinstance(granted, set | frozenset):
        granted = set(granted)
    module = needed.split(":", 1)[0]
    return "*" in granted or needed in granted or f"{module}:*" in granted
