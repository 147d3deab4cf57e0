"""Runtime tokens: the short-lived credential a running function calls Roost back with.

A runtime token names the run's caller (user, and the session or API key they called with)
and the scopes of every function in the chain of calls that led to it. It carries no scopes
of its own to grant: each time it is presented, the caller is resolved again
(`principals.of_caller`), and the principal it yields holds the caller's current scopes
narrowed by every function's declared ones. So a function never does more than its caller,
nor more than it declared, nor after its caller was signed out, revoked or disabled.

The token is `rft_` + an HS256 JWT under a key derived from the signing key for this use
only, so it can never pass for an access token, nor one for it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import msgspec

from roost.errors import AuthenticationError
from roost.services.security import AccessTokens

PREFIX = "rft_"
MAX_CHAIN = 8  # functions calling functions, at most this deep
_PURPOSE = "function-runtime-tokens"
# the JOSE header PyJWT writes for HS256, base64url-encoded once
_HEADER: Final = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class CallerRef(msgspec.Struct, frozen=True):
    """Who a run acts for: a user, and the session or API key they called with."""

    user_id: str
    session_id: str | None = None
    api_key_id: str | None = None


class RuntimeClaims(msgspec.Struct, frozen=True):
    tenant: str
    caller: CallerRef
    limits: tuple[frozenset[str], ...]  # the declared scopes of each function in the chain
    function: str
    execution_id: str
    expires_at: float
    # an async run's attempt (`attempt_stamp` of its record's started_at): a run cut short and
    # run again keeps its invocation id, and the token of the attempt cut short must not act
    attempt: int | None = None


def attempt_stamp(started_at: datetime) -> int:
    """An attempt's start as whole microseconds since the epoch (exact, unlike a float)."""
    return (started_at - _EPOCH) // timedelta(microseconds=1)


class RuntimeTokens:
    """Issues and reads runtime tokens."""

    def __init__(self, access_tokens: AccessTokens) -> None:
        self._key = access_tokens.derive(_PURPOSE)  # kept by AccessTokens: not derived per run
        self._clock = access_tokens.clock  # the server's clock decides expiry, as for access tokens

    def issue(self, claims: RuntimeClaims) -> str:
        """A signed token for `claims`: an HS256 JWT as PyJWT writes it (and reads it back,
        `read`), signed here directly, as every sync call mints one (a tenth of PyJWT's cost)."""
        body: dict[str, Any] = {
            "typ": "function",
            "iss": "roost",
            "tnt": claims.tenant,
            "sub": claims.caller.user_id,
            "sid": claims.caller.session_id,
            "akid": claims.caller.api_key_id,
            "lim": [sorted(scopes) for scopes in claims.limits],
            "fn": claims.function,
            "exe": claims.execution_id,
            "iat": int(self._clock()),
            "exp": int(claims.expires_at),
        }
        if claims.attempt is not None:
            body["att"] = claims.attempt
        signed = _HEADER + b"." + base64.urlsafe_b64encode(msgspec.json.encode(body)).rstrip(b"=")
        signature = hmac.new(self._key, signed, hashlib.sha256).digest()
        return PREFIX + (signed + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()

    def read(self, token: str) -> RuntimeClaims:
        """The claims of a valid runtime token; AuthenticationError says why it is not one."""
        import jwt  # PyJWT and cryptography: 70 ms of start-up, loaded on first use

        try:
            body: dict[str, Any] = jwt.decode(
                token.removeprefix(PREFIX),
                self._key,
                algorithms=["HS256"],
                issuer="roost",
                options={
                    "require": ["exp", "sub", "tnt", "lim", "fn", "exe"],
                    "verify_exp": False,  # checked below, on the server's clock
                    "verify_iat": False,
                },
            )
        except jwt.InvalidTokenError:
            raise AuthenticationError("invalid runtime token", code="invalid_credentials") from None
        if type(body["exp"]) is not int or body["exp"] <= self._clock():
            raise AuthenticationError(
                "this function's runtime token expired (its run is over)", code="token_expired"
            )
        limits, attempt = body["lim"], body.get("att")
        if (
            body.get("typ") != "function"
            or not isinstance(limits, list)
            or (attempt is not None and type(attempt) is not int)
        ):
            raise AuthenticationError("not a runtime token", code="invalid_credentials")
        return RuntimeClaims(
            tenant=str(body["tnt"]),
            caller=CallerRef(
                str(body["sub"]), _optional(body.get("sid")), _optional(body.get("akid"))
            ),
            limits=tuple(frozenset(str(scope) for scope in scopes) for scopes in limits),
            function=str(body["fn"]),
            execution_id=str(body["exe"]),
            expires_at=float(body["exp"]),
            attempt=attempt,
        )


def canonical_spelling(token: str) -> bool:
    """Whether `token` is spelled as `issue` writes it: three base64url parts, no padding, no
    stray bits in a part's last character. PyJWT also reads the same token spelled otherwise
    (with `=` after it, say), and the server caches principals by a credential's text: each
    spelling would be an entry of its own, which the run's end, forgetting the token as
    issued, would leave acting until it expired in the cache."""
    parts = token.removeprefix(PREFIX).split(".")
    if len(parts) != 3:
        return False
    for part in parts:
        raw = part.encode("ascii", "replace")
        try:
            decoded = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
        except ValueError:  # binascii.Error
            return False
        if base64.urlsafe_b64encode(decoded).rstrip(b"=") != raw:
            return False
    return True


def _optional(value: Any) -> str | None:
    return None if value is None else str(value)
