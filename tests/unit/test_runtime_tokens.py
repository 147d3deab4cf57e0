"""Runtime tokens are signed by hand (each sync call mints one): they must stay the HS256 JWTs
PyJWT would write, under the key derived for them only."""

from __future__ import annotations

import time

import jwt
import pytest

from roost.errors import AuthenticationError
from roost.services.functions.tokens import PREFIX, CallerRef, RuntimeClaims, RuntimeTokens
from roost.services.security import AccessTokens

CLAIMS = RuntimeClaims(
    tenant="acme",
    caller=CallerRef("user-1", "session-1", None),
    limits=(frozenset({"kv:read", "functions:execute"}), frozenset({"kv:read"})),
    function="report",
    execution_id="run-1",
    expires_at=time.time() + 24 * 3600,  # far ahead: read long after import
)


def test_a_runtime_token_is_the_jwt_pyjwt_would_sign_and_reads_back() -> None:
    access = AccessTokens("k" * 40, 900)
    tokens = RuntimeTokens(access)
    token = tokens.issue(CLAIMS)
    assert token.startswith(PREFIX)
    key = access.derive("function-runtime-tokens")
    body = jwt.decode(token.removeprefix(PREFIX), key, algorithms=["HS256"], issuer="roost")
    assert jwt.encode(body, key, algorithm="HS256") == token.removeprefix(PREFIX)
    assert body["lim"] == [["functions:execute", "kv:read"], ["kv:read"]]
    read = RuntimeTokens(access).read(token)
    assert read == RuntimeClaims(
        tenant="acme",
        caller=CLAIMS.caller,
        limits=CLAIMS.limits,
        function="report",
        execution_id="run-1",
        expires_at=float(int(CLAIMS.expires_at)),
    )


def test_a_runtime_token_of_another_signing_key_or_an_access_token_is_refused() -> None:
    token = RuntimeTokens(AccessTokens("k" * 40, 900)).issue(CLAIMS)
    other = AccessTokens("o" * 40, 900)
    with pytest.raises(AuthenticationError):
        RuntimeTokens(other).read(token)
    access, _ = other.issue("user-1", "acme", "session-1")
    with pytest.raises(AuthenticationError):
        RuntimeTokens(other).read(PREFIX + access)  # signed with the access key, not this one
