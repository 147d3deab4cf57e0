"""Email verification and password reset: one-time tokens sent by mail.

- A token is an opaque string (`rev_...` to verify an address, `rpr_...` to reset a
  password); only its SHA-256 is kept (`roost_user_tokens`), with the address it was sent to,
  an expiry (`ROOST_EMAIL_VERIFICATION_TTL`, `ROOST_PASSWORD_RESET_TTL`) and when it was used.
  Its first use spends it.
- Asking for a mail answers the same whether an account has that address or not, and a mail
  that cannot be delivered is recorded in the outbox, not reported: nobody learns which
  addresses have accounts. Every mail the auth flows send (these, and the ones sign-up and an
  email change send) counts against limits per address and per client address (`may_mail`).
- The mails link to `ROOST_AUTH_LINK_URL` with the token in it (or carry the token alone).
  The server builds that link; a tenant's template only places it (services/mail_render.py).
  The token goes to the relay alone: the outbox keeps "[redacted]" in its place, and without
  a relay the letter is kept in the data dir's `mail/` folder (development).
- A password reset signs the user out everywhere and spends every other reset token the user
  still holds. A verification marks the address the token
  was sent to, and only while it is still the user's address.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Literal

from sqlalchemy import select
from sqlalchemy.engine import RowMapping

from roost.backends.sql.tables import sessions, user_tokens, users
from roost.errors import (
    AuthenticationError,
    RateLimitError,
    ServiceUnavailableError,
    ValidationError,
)
from roost.services import accounts
from roost.services.accounts import revoke_sessions, sign_out_member_accounts
from roost.services.context import Context
from roost.services.mail import send_template
from roost.services.registry import operation
from roost.services.security import (
    make_opaque,
    new_id,
    parse_opaque,
    same_hash,
    take_or_refuse,
)
from roost.wire.auth import EmailRequest, PasswordResetRequest, TokenRequest
from roost.wire.common import Done

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

logger = logging.getLogger("roost.auth")

Purpose = Literal["verify_email", "reset_password"]
_KINDS: dict[Purpose, Literal["rev", "rpr"]] = {"verify_email": "rev", "reset_password": "rpr"}
_TEMPLATES: dict[Purpose, str] = {
    "verify_email": "email_verification",
    "reset_password": "password_reset",
}
_HOUR = 3600


@operation("auth.request_password_reset", access="public")
async def request_password_reset(ctx: Context, params: EmailRequest) -> Done:
    """Mail a password reset link to the account with this address, if there is one (the
    answer is the same either way)."""
    await _mail_token(ctx, params.email, "reset_password")
    return Done()


@operation("auth.confirm_password_reset", access="public", revokes=True)
async def confirm_password_reset(ctx: Context, params: PasswordResetRequest) -> Done:
    """Set a new password with the token from a reset mail; every session is signed out and
    every other reset mail of the user stops working. The address the mail reached counts as
    verified."""
    new_hash = await ctx.platform.passwords.hash(params.new_password)
    async with ctx.platform.db.write(ctx.tenant) as conn:
        token = await _spend(ctx, conn, params.token, "reset_password")
        now = ctx.now()
        await conn.execute(
            users.update().where(users.c.id == token["user_id"]).values(password_hash=new_hash)
        )
        # the link reached the address: it is verified (when it is still the account's)
        await conn.execute(
            users.update()
            .where(
                users.c.id == token["user_id"],
                users.c.email == token["email"],
                users.c.email_verified_at.is_(None),
            )
            .values(email_verified_at=now)
        )
        await conn.execute(
            user_tokens.update()
            .where(
                user_tokens.c.user_id == token["user_id"],
                user_tokens.c.purpose == "reset_password",
                user_tokens.c.used_at.is_(None),
            )
            .values(used_at=now)
        )
        count = await revoke_sessions(conn, sessions.c.user_id == token["user_id"], now)
    count += await sign_out_member_accounts(ctx.platform, ctx.tenant, token["user_id"], now)
    await ctx.platform.forget_principals()
    return Done(count=count)


@operation("auth.resend_verification", access="public")
async def resend_verification(ctx: Context, params: EmailRequest) -> Done:
    """Mail a new verification link to this address if an account has it unverified (the
    answer is the same either way)."""
    await _mail_token(ctx, params.email, "verify_email")
    return Done()


@operation("auth.verify_email", access="public")
async def verify_email(ctx: Context, params: TokenRequest) -> Done:
    """Mark the address a verification mail was sent to as verified."""
    async with ctx.platform.db.write(ctx.tenant) as conn:
        token = await _spend(ctx, conn, params.token, "verify_email")
        result = await conn.execute(
            users.update()
            .where(users.c.id == token["user_id"], users.c.email == token["email"])
            .values(email_verified_at=ctx.now())
        )
    if result.rowcount == 0:
        raise _invalid("this link is for an address the account no longer has")
    return Done(count=1)


async def send_verification(ctx: Context, user: RowMapping) -> None:
    """After sign-up or an email change: mail the user a verification link (best effort, and
    within the mail limits: past them no mail goes, and `auth.resend_verification` sends one
    later)."""
    if user["email"] and await may_mail(ctx, "verify_email", user["email"]):
        await _deliver(ctx, user, "verify_email")


async def may_mail(ctx: Context, kind: str, address: str) -> bool:
    """Count one `kind` mail to `address` asked for from the caller's client address; False
    (nothing counted) once either is past its limit for the hour. Every mail the auth flows
    send passes here, so no anonymous or signed-in call floods a mailbox."""
    try:
        await _count_mail(ctx, kind, address)
    except RateLimitError:
        logger.info("%s mail not sent: past the hourly mail limits", kind)
        return False
    return True


async def _count_mail(ctx: Context, kind: str, address: str) -> None:
    """Count one mail against the limits per address and per client address, or raise
    RateLimitError (nothing counted)."""
    settings = ctx.platform.settings
    limits = (
        (f"mail:{kind}:{ctx.tenant}:{address.lower()}", settings.mails_per_address),
        (f"mail-from:{ctx.client_address}", settings.mails_per_client),
    )
    await take_or_refuse(ctx.platform.limiter, limits, _HOUR, "mails asked for", new_id())


count_mail = _count_mail  # the passwordless mails count against the same limits


async def _mail_token(ctx: Context, email: str, purpose: Purpose) -> None:
    await _count_mail(ctx, purpose, email)
    async with ctx.platform.db.read(ctx.tenant) as conn:
        user = await accounts.find_by_email(conn, email, active_only=True)
    if user is None or (purpose == "verify_email" and user["email_verified_at"] is not None):
        return
    await _deliver(ctx, user, purpose)


async def _deliver(ctx: Context, user: RowMapping, purpose: Purpose) -> None:
    settings = ctx.platform.settings
    ttl = (
        settings.email_verification_ttl
        if purpose == "verify_email"
        else settings.password_reset_ttl
    )
    row_id = new_id()
    token = make_opaque(_KINDS[purpose], ctx.tenant, row_id)
    now = ctx.now()
    async with ctx.platform.db.write(ctx.tenant) as conn:
        await conn.execute(
            user_tokens.insert().values(
                id=row_id,
                user_id=user["id"],
                purpose=purpose,
                token_hash=token.hash,
                email=user["email"],
                created_at=now,
                expires_at=now + timedelta(seconds=ttl),
            )
        )
    link = token.token
    if settings.auth_link_url:
        link = settings.auth_link_url.replace("{action}", purpose).replace("{token}", token.token)
    # The token is no template value: a template places the server's link, never builds one.
    model = {
        "name": user["first_name"] or user["username"],
        "username": user["username"],
        "link": link,
    }
    try:
        await send_template(ctx, _TEMPLATES[purpose], [user["email"]], model, secret=token.token)
    except (ServiceUnavailableError, ValidationError) as exc:
        # Kept as failed in the outbox, or refused (a tenant's template too large): either way
        # not for the caller, who must not learn whether the address has an account.
        logger.warning("%s mail for user %s not delivered: %s", purpose, user["id"], exc.message)


async def _spend(ctx: Context, conn: AsyncConnection, token: str, purpose: Purpose) -> RowMapping:
    """The token's row, marked used; AuthenticationError for any token that does not work."""
    try:
        parsed = parse_opaque(token, _KINDS[purpose])
    except AuthenticationError:
        raise _invalid("this link is not valid") from None
    if parsed.tenant != ctx.tenant:
        raise _invalid("this link is for another tenant")
    row = (
        (await conn.execute(select(user_tokens).where(user_tokens.c.id == parsed.id)))
        .mappings()
        .first()
    )
    now = ctx.now()
    if row is None or row["purpose"] != purpose or not same_hash(row["token_hash"], parsed.hash):
        raise _invalid("this link is not valid")
    if row["used_at"] is not None:
        raise _invalid("this link was used already")
    if row["expires_at"] <= now:
        raise _invalid("this link has expired")
    await conn.execute(
        user_tokens.update().where(user_tokens.c.id == row["id"]).values(used_at=now)
    )
    return row


def _invalid(why: str) -> AuthenticationError:
    return AuthenticationError(
        f"{why}; ask for a new mail", code="invalid_token", details={"field": "token"}
    )
