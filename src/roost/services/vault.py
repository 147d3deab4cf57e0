"""Envelope encryption of secrets: AES-256-GCM all the way down.

- Each tenant has a data key (32 random bytes), made with its first secret and stored in its
  own `roost_secret_keys`, wrapped (encrypted) by the server's master key
  (`Settings.master_key_bytes`: `ROOST_MASTER_KEY` or a 0600 key file). A database dump alone
  reads no secret, and one tenant's key opens nothing of another's.
- Each value is sealed under the data key with a fresh 96-bit nonce and bound to its place
  (tenant, app, key, version) as associated data: a ciphertext copied onto another row does
  not open.
- Unwrapped data keys are kept in memory by their wrapped bytes, so a tenant dropped and made
  again never meets its predecessor's key.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from roost.backends.sql.database import Database
from roost.backends.sql.tables import secret_keys
from roost.errors import ServerError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# `cryptography` is imported where a secret is first sealed or opened, not when the server
# starts (~15 ms of `roost serve`'s start): a server whose tenants keep no secrets never loads it.

_NONCE = 12
_KEY_ROW = 1


class Vault:
    """Seals and opens secret values for every tenant of one server."""

    def __init__(self, master_key: bytes) -> None:
        self._master_key = master_key  # 32 bytes (`Settings.master_key_bytes` checked it)
        self._master_aead: AESGCM | None = None
        self._opened: dict[bytes, AESGCM] = {}

    @property
    def _master(self) -> AESGCM:
        if self._master_aead is None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            self._master_aead = AESGCM(self._master_key)
        return self._master_aead

    async def data_key(self, db: Database, tenant: str, *, create: bool) -> AESGCM | None:
        """The tenant's data key; made and stored first if `create` (else None if none yet)."""
        async with db.read(tenant) as conn:
            wrapped = await conn.scalar(
                select(secret_keys.c.wrapped).where(secret_keys.c.id == _KEY_ROW)
            )
        if wrapped is None and create:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            nonce = os.urandom(_NONCE)
            made = nonce + self._master.encrypt(nonce, AESGCM.generate_key(256), _place(tenant))
            try:
                async with db.write(tenant) as conn:
                    await conn.execute(secret_keys.insert().values(id=_KEY_ROW, wrapped=made))
                wrapped = made
            except IntegrityError:  # another replica made it first: use theirs
                return await self.data_key(db, tenant, create=False)
        return None if wrapped is None else self._unwrap(tenant, bytes(wrapped))

    def seal(self, key: AESGCM, place: bytes, value: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + key.encrypt(nonce, value.encode(), place)

    def open(self, key: AESGCM, place: bytes, sealed: bytes) -> str:
        from cryptography.exceptions import InvalidTag

        try:
            return key.decrypt(sealed[:_NONCE], sealed[_NONCE:], place).decode()
        except InvalidTag:
            raise ServerError(
                "a secret's ciphertext does not match its place (it was altered or moved)",
                code="secret_unreadable",
            ) from None

    def _unwrap(self, tenant: str, wrapped: bytes) -> AESGCM:
        opened = self._opened.get(wrapped)
        if opened is None:
            from cryptography.exceptions import InvalidTag
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            try:
                raw = self._master.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], _place(tenant))
            except InvalidTag:
                raise ServerError(
                    f"tenant {tenant!r}'s secrets were written under another master key: start "
                    "the server with the ROOST_MASTER_KEY (or master.key file) they were "
                    "written with",
                    code="wrong_master_key",
                ) from None
            opened = self._opened[wrapped] = AESGCM(raw)
        return opened


def secret_place(tenant: str, app: str, key: str, version: int) -> bytes:
    """The associated data that binds a sealed value to its row."""
    return _place(tenant, app, key, str(version))


def _place(*parts: str) -> bytes:
    return "\0".join(("roost-secret", *parts)).encode()
