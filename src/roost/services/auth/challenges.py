"""The second-factor gate every first factor (password, magic link, mailed code) passes.

A user with a confirmed TOTP factor, or one the tenant requires it of (site setting
`auth_two_factor_roles`: role names), does not get a session from the first factor: the
sign-in is refused with `SecondFactorRequired`, carrying a challenge (an opaque `r2f_` token,
kept hashed in `roost_user_tokens`, valid `CHALLENGE_TTL` seconds, spent by its first
success). `auth.verify_totp` trades it and a code for the session (services/auth/totp.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import select
from sqlalchemy.engine import RowMapping

from roost.backends.sql.tables import site_settings, totp_factors, user_tokens
from roost.errors import AuthenticationError, SecondFactorRequired
from roost.services import accounts
from roost.services.auth import events
from roost.services.context import Context
from roost.services.security import make_opaque, new_id, parse_opaque, same_hash

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

CHALLENGE_TTL = 300
REQUIRED_ROLES_SETTING = "auth_two_factor_roles"
Kind = Literal["totp", "totp_enrolment"]
_PURPOSES: dict[Kind, str] = {"totp": "2fa_signin", "totp_enrolment": "2fa_enrol"}
_WITH_SESSION_TOKEN = "_st"


async def site_setting(conn: AsyncConnection, key: str) -> Any:
    """One key of the tenant's site settings (None when unset)."""
    data = await conn.scalar(select(site_settings.c.data).where(site_settings.c.id == 1))
    return (data or {}).get(key)


async def required_for(conn: AsyncConnection, user: RowMapping, now: datetime) -> bool:
    """Whether the tenant requires two-factor sign-in of one of the user's roles. A setting
    that is not a list of names requires nothing (it cannot lock every user out)."""
    wanted = await site_setting(conn, REQUIRED_ROLES_SETTING)
    if not isinstance(wanted, list):
        return False
    names, _ = await accounts.roles_and_scopes(conn, user, now)
    return bool(set(names) & {name for name in wanted if isinstance(name, str)})


async def pass_gate(ctx: Context, user: RowMapping, *, session_token: bool, via: str) -> None:
    """Return if the first factor alone signs `user` in; else raise SecondFactorRequired with
    a new challenge."""
    async with ctx.platform.db.read(ctx.tenant) as conn:
        confirmed = await conn.scalar(
            select(totp_factors.c.confirmed_at).where(totp_factors.c.user_id == user["id"])
        )
        required = confirmed is None and await required_for(conn, user, ctx.now())
    if confirmed is None and not required:
        return
    kind: Kind = "totp" if confirmed is not None else "totp_enrolment"
    challenge = await _issue(ctx, user, kind, session_token)
    await events.record(ctx, "second_factor_challenged", user["username"], via=via, kind=kind)
    raise SecondFactorRequired(
        "this account signs in with a second factor: call auth.verify_totp with the challenge "
        "and a code from the authenticator app"
        + (" (enrol first with auth.totp_enrol and the challenge)" if required else ""),
        details={"second_factor": kind, "challenge": challenge, "expires_in": CHALLENGE_TTL},
    )


async def _issue(ctx: Context, user: RowMapping, kind: Kind, session_token: bool) -> str:
    row_id = new_id()
    token = make_opaque("r2f", ctx.tenant, row_id)
    now = ctx.now()
    async with ctx.platform.db.write(ctx.tenant) as conn:
        await conn.execute(
            user_tokens.insert().values(
                id=row_id,
                user_id=user["id"],
                purpose=_PURPOSES[kind] + (_WITH_SESSION_TOKEN if session_token else ""),
                token_hash=token.hash,
                email="",
                created_at=now,
                expires_at=now + timedelta(seconds=CHALLENGE_TTL),
            )
        )
    return token.token


class OpenChallenge:
    """A challenge found live (not spent, not expired): its row, kind and session wish."""

    def __init__(self, row: RowMapping) -> None:
        self.row = row
        purpose: str = row["purpose"]
        self.session_token = purpose.endswith(_WITH_SESSION_TOKEN)
        base = purpose.removesuffix(_WITH_SESSION_TOKEN)
        self.kind: Kind = "totp" if base == _PURPOSES["totp"] else "totp_enrolment"

    @property
    def id(self) -> str:
        return str(self.row["id"])

    @property
    def user_id(self) -> str:
        return str(self.row["user_id"])


async def find(ctx: Context, conn: AsyncConnection, challenge: str) -> OpenChallenge:
    """The live challenge `challenge` names; AuthenticationError (field `challenge`) for any
    other (malformed, another tenant's, unknown, spent, expired)."""
    try:
        parsed = parse_opaque(challenge, "r2f")
    except AuthenticationError:
        raise _invalid("this challenge is not valid") from None
    if parsed.tenant != ctx.tenant:
        raise _invalid("this challenge is for another tenant")
    row = (
        (await conn.execute(select(user_tokens).where(user_tokens.c.id == parsed.id)))
        .mappings()
        .first()
    )
    if (
        row is None
        or not str(row["purpose"]).startswith("2fa_")
        or not same_hash(row["token_hash"], parsed.hash)
    ):
        raise _invalid("this challenge is not valid")
    if row["used_at"] is not None:
        raise _invalid("this challenge was used already")
    if row["expires_at"] <= ctx.now():
        raise _invalid("this challenge has expired")
    return OpenChallenge(row)


async def spend(conn: AsyncConnection, challenge: OpenChallenge, now: datetime) -> None:
    """Mark the challenge used; AuthenticationError if a concurrent call spent it first."""
    result = await conn.execute(
        user_tokens.update()
        .where(user_tokens.c.id == challenge.id, user_tokens.c.used_at.is_(None))
        .values(used_at=now)
    )
    if result.rowcount != 1:
        raise _invalid("this challenge was used already")


def _invalid(why: str) -> AuthenticationError:
    return AuthenticationError(
        f"{why}; sign in again", code="invalid_challenge", details={"field": "challenge"}
    )
