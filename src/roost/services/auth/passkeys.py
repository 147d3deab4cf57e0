"""Passkeys (WebAuthn): register one while signed in, then sign in with it, no password.

The ceremonies' checks are the `webauthn` library's (origin, challenge, RP id hash, user
presence and verification, the signature by the key registered); this module keeps the
challenges, the credentials and the counters.

- A tenant turns passkeys on with its site settings `passkey_rp_id` (the domain the passkeys
  are bound to) and `passkey_origins` (the pages allowed to use them, e.g.
  `["https://app.example.com"]`); `passkey_rp_name` names it in the browser's prompt. Without
  them every call answers 409 `passkeys_not_configured`.
- A challenge is 32 random bytes, kept on the server by its hash (`roost_auth_handoffs`) for
  five minutes with what it is for (registration, and for whom; or sign-in), and spent by the
  first answer that names it, right or wrong: a replayed answer finds nothing.
- Sign-in uses discoverable credentials (no user name asked first), so the options tell
  nobody which accounts exist or have passkeys.
- The signature counter must grow at every sign-in, unless the authenticator always reports
  0 (synced passkeys do): a count that goes back means a cloned key, and is refused.
- User verification (a PIN or biometric at the authenticator) is required at registration and
  sign-in. A passkey is then two factors in one (the device, and what unlocks it), so a
  passkey sign-in does not pass the TOTP gate (`challenges.pass_gate`): that gate asks a
  first factor for a second one, and a verified passkey already is both (NIST SP 800-63B's
  multi-factor cryptographic authenticator).
"""

from __future__ import annotations

import functools
import json
import struct
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import delete, func, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from roost.backends.sql.tables import auth_handoffs, passkeys, users
from roost.errors import AuthenticationError, ConflictError, NotFoundError, ValidationError
from roost.services import accounts
from roost.services.auth import challenges, events
from roost.services.auth.sessions import open_session
from roost.services.context import Context
from roost.services.registry import operation
from roost.services.security import new_id, take_or_refuse, token_hash
from roost.wire.auth import TokenPair
from roost.wire.common import Done, Empty
from roost.wire.passkeys import (
    Passkey,
    PasskeyOptions,
    PasskeyRef,
    PasskeySignIn,
    RegisterPasskeyRequest,
)

if TYPE_CHECKING:  # the webauthn library (~50 ms of imports) loads on a passkey's first use
    from sqlalchemy.ext.asyncio import AsyncConnection
    from webauthn.helpers.structs import AuthenticationCredential

CHALLENGE_TTL = 300
MAX_PER_USER = 20
OPTIONS_PER_CLIENT = 60  # sign-in options asked for per client address in CHALLENGE_TTL
_REGISTER, _SIGN_IN = "pk_reg", "pk_auth"


class RelyingParty(msgspec.Struct, frozen=True):
    id: str
    name: str
    origins: list[str]


@operation("auth.passkey_registration_options")
async def registration_options(ctx: Context, params: Empty) -> PasskeyOptions:
    """Options for `navigator.credentials.create` that register a passkey for the signed-in
    user; send what the browser answers to `auth.register_passkey` within five minutes."""
    from webauthn import generate_registration_options, options_to_json
    from webauthn.helpers import base64url_to_bytes
    from webauthn.helpers.structs import (
        AttestationConveyancePreference,
        AuthenticatorSelectionCriteria,
        PublicKeyCredentialDescriptor,
        ResidentKeyRequirement,
        UserVerificationRequirement,
    )

    principal = ctx.require_user()
    rp = await relying_party(ctx)
    async with ctx.platform.db.read(ctx.tenant) as conn:
        user = await accounts.live_user(conn, principal.user_id)
        known = (
            await conn.scalars(
                select(passkeys.c.credential_id).where(passkeys.c.user_id == user["id"])
            )
        ).all()
    _refuse_anonymous(user)
    if len(known) >= MAX_PER_USER:
        raise ConflictError(
            f"you have {MAX_PER_USER} passkeys, the most a user may have: delete one first",
            code="too_many_passkeys",
        )
    options = generate_registration_options(
        rp_id=rp.id,
        rp_name=rp.name,
        user_id=user["id"].encode(),  # random, no personal data: the authenticator keeps it
        user_name=user["username"],
        user_display_name=" ".join(filter(None, (user["first_name"], user["last_name"])))
        or user["username"],
        timeout=CHALLENGE_TTL * 1000,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[
            PublicKeyCredentialDescriptor(id=base64url_to_bytes(known_id)) for known_id in known
        ],
    )
    await _put_challenge(ctx, options.challenge, _REGISTER, {"user_id": user["id"]})
    return PasskeyOptions(options=json.loads(options_to_json(options)), expires_in=CHALLENGE_TTL)


@operation("auth.register_passkey")
async def register_passkey(ctx: Context, params: RegisterPasskeyRequest) -> Passkey:
    """Check the browser's answer to `auth.passkey_registration_options` and keep the new
    passkey for the signed-in user."""
    from webauthn import verify_registration_response
    from webauthn.helpers import bytes_to_base64url, parse_registration_credential_json

    principal = ctx.require_user()
    rp = await relying_party(ctx)
    credential = _parsed(params.credential, parse_registration_credential_json)
    challenge, data = await _take_challenge(ctx, credential.response.client_data_json, _REGISTER)
    try:
        if data.get("user_id") != principal.user_id:
            raise _refused("this challenge was given to another user", "invalid_challenge")
        try:
            verified = verify_registration_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=rp.id,
                expected_origin=rp.origins,
                require_user_verification=True,
            )
        except _unreadable() as exc:
            raise _refused(f"the passkey does not verify: {_why(exc)}") from None
    except AuthenticationError as exc:
        await events.record(
            ctx, "passkey_registration_refused", principal.username, level="warn", reason=exc.code
        )
        raise
    now = ctx.now()
    row_id = new_id()
    try:
        async with ctx.platform.db.write(ctx.tenant) as conn:
            user = await accounts.live_user(conn, principal.user_id)
            _refuse_anonymous(user)
            await conn.execute(
                passkeys.insert().values(
                    id=row_id,
                    credential_id=bytes_to_base64url(verified.credential_id),
                    user_id=user["id"],
                    public_key=verified.credential_public_key,
                    sign_count=verified.sign_count,
                    name=params.name or "passkey",
                    aaguid=str(verified.aaguid)[:36],
                    backed_up=bool(verified.credential_backed_up),
                    created_at=now,
                )
            )
            count = await conn.scalar(select(func.count()).where(passkeys.c.user_id == user["id"]))
            if int(count or 0) > MAX_PER_USER:
                raise ConflictError(
                    f"you have {MAX_PER_USER} passkeys already", code="too_many_passkeys"
                )
            row = await _row(conn, row_id, user["id"])
    except IntegrityError:  # the credential id is another passkey's (this user's or another's)
        raise ConflictError(
            "this passkey is registered already", details={"field": "credential"}
        ) from None
    await events.record(ctx, "passkey_registered", principal.username, passkey=row_id)
    return _passkey(row)


@operation("auth.list_passkeys", read_only=True)
async def list_passkeys(ctx: Context, params: Empty) -> list[Passkey]:
    """The signed-in user's passkeys, oldest first."""
    principal = ctx.require_user()
    async with ctx.platform.db.read(ctx.tenant) as conn:
        rows = (
            (
                await conn.execute(
                    select(passkeys)
                    .where(passkeys.c.user_id == principal.user_id)
                    .order_by(passkeys.c.created_at, passkeys.c.id)
                )
            )
            .mappings()
            .all()
        )
    return [_passkey(row) for row in rows]


@operation("auth.delete_passkey")
async def delete_passkey(ctx: Context, params: PasskeyRef) -> Done:
    """Forget one of the signed-in user's passkeys: it signs nobody in any more."""
    principal = ctx.require_user()
    async with ctx.platform.db.write(ctx.tenant) as conn:
        result = await conn.execute(
            delete(passkeys).where(
                passkeys.c.id == params.id, passkeys.c.user_id == principal.user_id
            )
        )
    if result.rowcount != 1:
        raise NotFoundError(f"you have no passkey {params.id!r}", details={"field": "id"})
    await events.record(ctx, "passkey_deleted", principal.username, passkey=params.id)
    return Done(count=1)


@operation("auth.passkey_sign_in_options", access="public")
async def sign_in_options(ctx: Context, params: Empty) -> PasskeyOptions:
    """Options for `navigator.credentials.get` that sign in with a passkey (the user picks
    one at the browser); send what it answers to `auth.sign_in_with_passkey`."""
    from webauthn import generate_authentication_options, options_to_json
    from webauthn.helpers.structs import UserVerificationRequirement

    rp = await relying_party(ctx)
    await take_or_refuse(
        ctx.platform.limiter,
        [(f"passkey-options-from:{ctx.client_address}", OPTIONS_PER_CLIENT)],
        CHALLENGE_TTL,
        "passkey sign-ins",
        new_id(),
    )
    options = generate_authentication_options(
        rp_id=rp.id,
        timeout=CHALLENGE_TTL * 1000,
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    await _put_challenge(ctx, options.challenge, _SIGN_IN, {})
    return PasskeyOptions(options=json.loads(options_to_json(options)), expires_in=CHALLENGE_TTL)


@operation("auth.sign_in_with_passkey", access="public")
async def sign_in_with_passkey(ctx: Context, params: PasskeySignIn) -> TokenPair:
    """Trade the browser's answer to `auth.passkey_sign_in_options` for a session."""
    from webauthn.helpers import bytes_to_base64url, parse_authentication_credential_json

    rp = await relying_party(ctx)
    credential = _parsed(params.credential, parse_authentication_credential_json)
    challenge, _ = await _take_challenge(ctx, credential.response.client_data_json, _SIGN_IN)
    credential_id = bytes_to_base64url(credential.raw_id)
    async with ctx.platform.db.read(ctx.tenant) as conn:
        row = (
            (await conn.execute(select(passkeys).where(passkeys.c.credential_id == credential_id)))
            .mappings()
            .first()
        )
        user = await accounts.find_by_id(conn, row["user_id"]) if row is not None else None
    if row is None or user is None:
        await events.record(
            ctx, "passkey_sign_in_refused", "", level="warn", reason="unknown_passkey"
        )
        raise _refused("this passkey is not registered here", "unknown_passkey")
    try:
        await _check_assertion(ctx, rp, credential, challenge, row)
        if not user["is_active"]:
            raise AuthenticationError("this user is disabled", code="invalid_credentials")
    except AuthenticationError as exc:
        await events.record(
            ctx, "passkey_sign_in_refused", user["username"], level="warn", reason=exc.code
        )
        raise
    async with ctx.platform.db.write(ctx.tenant) as conn:
        await conn.execute(
            users.update().where(users.c.id == user["id"]).values(last_login=ctx.now())
        )
        pair = await open_session(ctx, conn, user["id"], with_session_token=params.session_token)
    await events.record(ctx, "signed_in_with_passkey", user["username"], passkey=row["id"])
    return pair


# -- the checks ---------------------------------------------------------------------------


async def _check_assertion(
    ctx: Context,
    rp: RelyingParty,
    credential: AuthenticationCredential,
    challenge: bytes,
    row: RowMapping,
) -> None:
    """The library's checks, then the counter's, then the counter moves on (once)."""
    from webauthn import verify_authentication_response

    handle = credential.response.user_handle
    if handle is not None and handle != row["user_id"].encode():
        raise _refused("this passkey names another user")
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origins,
            credential_public_key=bytes(row["public_key"]),
            # the counter is checked below, after the signature, to tell a clone apart
            credential_current_sign_count=0,
            require_user_verification=True,
        )
    except _unreadable() as exc:
        raise _refused(f"the passkey does not verify: {_why(exc)}") from None
    old, new = int(row["sign_count"]), int(verified.new_sign_count)
    if (new > 0 or old > 0) and new <= old:
        raise _refused(
            "this passkey's signature counter went back: the key may have been copied",
            "passkey_counter",
        )
    async with ctx.platform.db.write(ctx.tenant) as conn:
        moved = await conn.execute(
            passkeys.update()
            .where(passkeys.c.id == row["id"], passkeys.c.sign_count == old)
            .values(sign_count=new, last_used_at=ctx.now())
        )
    if moved.rowcount != 1:  # a concurrent sign-in with the same answer moved it first
        raise _refused("this passkey was used at the same time", "passkey_counter")


async def relying_party(ctx: Context) -> RelyingParty:
    """The tenant's passkey settings; 409 `passkeys_not_configured` when they are missing."""
    async with ctx.platform.db.read(ctx.tenant) as conn:
        rp_id = await challenges.site_setting(conn, "passkey_rp_id")
        origins = await challenges.site_setting(conn, "passkey_origins")
        name = await challenges.site_setting(conn, "passkey_rp_name")
    if (
        not isinstance(rp_id, str)
        or not rp_id
        or not isinstance(origins, list)
        or not origins
        or not all(isinstance(origin, str) and origin for origin in origins)
    ):
        raise ConflictError(
            "passkeys are off in this tenant: an admin sets the site settings passkey_rp_id "
            "and passkey_origins first",
            code="passkeys_not_configured",
        )
    return RelyingParty(
        id=rp_id, name=name if isinstance(name, str) and name else ctx.tenant, origins=origins
    )


# the webauthn library's refusals, and what its parsers let through on a malformed credential
# (bad base64 is a ValueError, a value of the wrong JSON type a TypeError or AttributeError,
# short binary data a struct.error): each is the caller's bad answer, never a 500
@functools.cache
def _unreadable() -> tuple[type[Exception], ...]:
    from webauthn.helpers.exceptions import WebAuthnException

    return (WebAuthnException, ValueError, TypeError, AttributeError, LookupError, struct.error)


def _why(exc: Exception) -> str:
    return str(exc)[:200] or type(exc).__name__


def _parsed(credential: dict[str, Any], parse: Any) -> Any:
    try:
        return parse(credential)
    except _unreadable() as exc:
        raise ValidationError(
            f"credential is not a WebAuthn credential: {_why(exc)}",
            details={"field": "credential"},
        ) from None


def _refused(why: str, code: str = "invalid_passkey") -> AuthenticationError:
    return AuthenticationError(why, code=code, details={"field": "credential"})


def _refuse_anonymous(user: RowMapping) -> None:
    if user["is_anonymous"]:
        raise ConflictError(
            "an anonymous user registers no passkey: upgrade the account first",
            code="anonymous_user",
        )


# -- challenges ---------------------------------------------------------------------------


async def _put_challenge(ctx: Context, challenge: bytes, kind: str, data: dict[str, Any]) -> None:
    from webauthn.helpers import bytes_to_base64url

    now = ctx.now()
    async with ctx.platform.db.write(ctx.tenant) as conn:
        await conn.execute(auth_handoffs.delete().where(auth_handoffs.c.expires_at < now))
        await conn.execute(
            auth_handoffs.insert().values(
                id_hash=token_hash(bytes_to_base64url(challenge)),
                kind=kind,
                data=data,
                expires_at=now + timedelta(seconds=CHALLENGE_TTL),
            )
        )


async def _take_challenge(
    ctx: Context, client_data_json: bytes, kind: str
) -> tuple[bytes, dict[str, Any]]:
    """The challenge the answer signed, spent (a second answer with it finds nothing), and
    what it was given for."""
    from webauthn.helpers import bytes_to_base64url, parse_client_data_json

    try:
        challenge = parse_client_data_json(client_data_json).challenge
    except _unreadable() as exc:
        raise ValidationError(
            f"credential has no readable client data: {_why(exc)}",
            details={"field": "credential"},
        ) from None
    where = (auth_handoffs.c.id_hash == token_hash(bytes_to_base64url(challenge))) & (
        auth_handoffs.c.kind == kind
    )
    async with ctx.platform.db.write(ctx.tenant) as conn:
        row = (
            await conn.execute(
                select(auth_handoffs.c.data, auth_handoffs.c.expires_at).where(where)
            )
        ).first()
        spent = (
            row is not None and (await conn.execute(auth_handoffs.delete().where(where))).rowcount
        )
    if row is None or spent != 1 or row.expires_at <= ctx.now():
        raise _refused(
            "unknown, used or expired challenge: ask for new options", "invalid_challenge"
        )
    return challenge, dict(row.data)


async def _row(conn: AsyncConnection, row_id: str, user_id: str) -> RowMapping:
    return (
        (
            await conn.execute(
                select(passkeys).where(passkeys.c.id == row_id, passkeys.c.user_id == user_id)
            )
        )
        .mappings()
        .one()
    )


def _passkey(row: RowMapping) -> Passkey:
    return Passkey(
        id=row["id"],
        name=row["name"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        backed_up=bool(row["backed_up"]),
    )
