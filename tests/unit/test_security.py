"""Credential primitives and the limiter."""

from __future__ import annotations

import asyncio
import threading

import msgspec
import pytest
from argon2 import PasswordHasher

from roost.errors import AuthenticationError, ConfigurationError
from roost.services.context import Principal, PrincipalCache
from roost.services.security import (
    AccessTokens,
    Passwords,
    make_opaque,
    parse_opaque,
    scope_allows,
)
from roost.settings import Settings, load_settings


def test_scope_wildcards() -> None:
    assert scope_allows({"*"}, "users:write")
    assert scope_allows({"users:*"}, "users:write")
    assert scope_allows({"users:write"}, "users:write")
    assert not scope_allows({"users:read"}, "users:write")
    assert not scope_allows({"user:*"}, "users:write")


def test_opaque_tokens_round_trip_and_refuse_other_kinds() -> None:
    token = make_opaque("rak", "acme", "0123abcd")
    parsed = parse_opaque(token.token, "rak")
    assert (parsed.tenant, parsed.id, parsed.hash) == ("acme", "0123abcd", token.hash)
    with pytest.raises(AuthenticationError):
        parse_opaque(token.token, "rst")
    with pytest.raises(AuthenticationError):
        parse_opaque("rak__x_y", "rak")


@pytest.mark.anyio
async def test_passwords_are_argon2id_and_verify() -> None:
    passwords = Passwords(memory_kib=1024, time_cost=1, parallelism=1)
    hashed = await passwords.hash("correct horse")
    assert hashed.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert await passwords.verify(hashed, "correct horse")
    assert not await passwords.verify(hashed, "wrong horse")
    assert not await passwords.verify(None, "anything")


@pytest.mark.anyio
async def test_a_hash_made_at_another_cost_verifies_and_needs_rehash() -> None:
    old = Passwords(memory_kib=2048, time_cost=1, parallelism=1)
    new = Passwords(memory_kib=1024, time_cost=2, parallelism=1)
    hashed = await old.hash("correct horse")
    assert await new.verify(hashed, "correct horse")
    assert new.needs_rehash(hashed)
    assert not old.needs_rehash(hashed)


class _CountingHasher(PasswordHasher):
    """A real argon2 hasher that records how many hashes ran at once."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.running, self.peak, self._lock = 0, 0, threading.Lock()

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        with self._lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            return super().hash(password, salt=salt)
        finally:
            with self._lock:
                self.running -= 1


@pytest.mark.anyio
async def test_concurrent_hashes_are_bounded_and_all_answer() -> None:
    passwords = Passwords(memory_kib=1024, time_cost=1, parallelism=1, concurrency=2)
    counting = _CountingHasher()
    passwords._hasher = counting
    hashes = await asyncio.gather(*(passwords.hash(f"password {i}") for i in range(12)))
    assert len(set(hashes)) == 12
    assert 1 <= counting.peak <= 2
    assert all([await passwords.verify(h, f"password {i}") for i, h in enumerate(hashes)])


def test_the_default_password_cost_is_owasps_argon2id() -> None:
    fields = {field.name: field for field in msgspec.structs.fields(Settings)}
    cost = [fields[f"password_hash_{name}"].default for name in ("memory_kib", "time_cost")]
    assert (*cost, fields["password_hash_parallelism"].default) == (19456, 2, 1)


def test_access_tokens_refuse_other_keys_and_expiry() -> None:
    tokens = AccessTokens("k" * 40, ttl=60)
    token, _ = tokens.issue("u1", "default", "s1")
    assert tokens.read(token).session_id == "s1"
    with pytest.raises(AuthenticationError) as caught:
        AccessTokens("z" * 40, ttl=60).read(token)
    assert caught.value.code == "invalid_credentials"
    expired = AccessTokens("k" * 40, ttl=-10).issue("u1", "default", "s1")[0]
    with pytest.raises(AuthenticationError) as caught:
        tokens.read(expired)
    assert caught.value.code == "token_expired"


def test_access_tokens_expire_on_the_clock_they_are_given() -> None:
    now = [1_000_000.0]
    tokens = AccessTokens("k" * 40, ttl=60, clock=lambda: now[0])
    token, expires_at = tokens.issue("u1", "default", "s1")
    assert expires_at == 1_000_060
    now[0] += 59.9
    assert tokens.read(token).expires_at == expires_at
    # another replica whose clock is a minute behind still takes it (no "not yet valid")
    assert AccessTokens("k" * 40, ttl=60, clock=lambda: now[0] - 60).read(token)
    now[0] += 0.1
    with pytest.raises(AuthenticationError) as caught:
        tokens.read(token)
    assert caught.value.code == "token_expired"


def test_bad_settings_name_the_variable() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(database_url="mysql://x", access_token_ttl=0, kv_near_cache_bytes=-1)
    assert "ROOST_DATABASE_URL" in caught.value.message
    assert "ROOST_ACCESS_TOKEN_TTL" in caught.value.message
    assert "ROOST_KV_NEAR_CACHE_BYTES" in caught.value.message


def test_key_file_readable_by_others_is_refused(tmp_path: object) -> None:
    from pathlib import Path

    data = Path(str(tmp_path))
    (data / "secret.key").write_text("x" * 50)
    (data / "secret.key").chmod(0o644)
    with pytest.raises(ConfigurationError) as caught:
        load_settings(data_dir=data).signing_key()
    assert "chmod 600" in caught.value.message


def test_a_principal_is_kept_no_longer_than_its_credential() -> None:
    # the cache's own ttl is 60 s; the session ends in 5 (its shared-load behaviour is
    # TTLCache's: tests/unit/test_caching.py)
    now = [1_000.0]
    cache = PrincipalCache(ttl=60, clock=lambda: now[0])
    principal = Principal("user", "default", "u1", "ann", (frozenset({"*"}),))

    async def load() -> tuple[Principal, float | None]:
        return principal, now[0] + 5

    assert asyncio.run(cache.principal("k", load)) is principal
    now[0] += 4.9
    assert cache.get("k") == (principal, 1_005.0)
    now[0] += 0.2
    assert cache.get("k") is None
    cache.put("forever", (principal, None))
    now[0] += 59.9
    assert cache.get("forever") is not None


def test_a_cache_of_no_seconds_keeps_no_principal() -> None:
    cache = PrincipalCache(ttl=0)  # ROOST_AUTH_CACHE_SECONDS=0: every request loads
    cache.put("k", (Principal("user", "default", "u1", "ann", (frozenset({"*"}),)), None))
    assert cache.get("k") is None
