"""Passwordless sign-in by mail: magic links and six-digit one-time codes.

- Asking for either answers the same whether or not an account has the address, after the
  same work (one read, one write, no mail waited for: delivery runs after the answer), so
  neither the answer nor its time tells which addresses have accounts. Each ask counts
  against the auth mail limits per address and per client address (`ROOST_MAILS_PER_ADDRESS`,
  `ROOST_MAILS_PER_CLIENT`, services/auth/recovery.py).
- A link token (`rml_...`) or a code is kept only as a hash in `roost_user_tokens`, works
  once, for `LINK_TTL` or `CODE_TTL` seconds, and only while the address is still the user's.
  A new code spends the older ones, and code guesses are limited per address and per client
  address (`_GUESSES_*`), so six digits are enough.
- A magic link leads to `redirect_to` (with `token=` added), which must start with one of
  the tenant's allowed URLs (site setting `auth_redirect_urls`): no open redirect. Without
  it, the link is `ROOST_AUTH_LINK_URL` with `{action}` = `magic_link`, or the token alone.
  The page it opens trades the token for the session (`auth.sign_in_with_magic_link`).
- Signing in by mail proves the address: it is marked verified. A user with a second factor
  is then asked for it (services/auth/challenges.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.engine import RowMapping

from roost.backends.sql.tables import user_tokens, users
from roost.errors import AuthenticationError, ServiceUnavailableError, ValidationError
from roost.services import accounts
from roost.services.auth import challenges, events, recovery
from roost.services.auth.sessions import open_session
from roost.services.context import Context
from roost.services.mail import send_template
from roost.services.registry import operation
from roost.services.security import make_opaque, new_id, parse_opaque, same_hash, take_or_refuse
from roost.wire.auth import TokenPair
from roost.wire.common import Done
from roost.wire.two_factor import (
    MagicLinkRequest,
    MagicLinkSignIn,
    MailCodeRequest,
    VerifyMailCodeRequest,
)

logger = logging.getLogger("roost.auth")

LINK_TTL = 900
CODE_TTL = 600
REDIRECTS_SETTING = "auth_redirect_urls"
_GUESSES_PER_ADDRESS = 5
_GUESSES_PER_CLIENT = 30
Purpose = Literal["magic_link", "email_code"]
_deliveries: set[asyncio.Task[None]] = set()  # kept until done, so none is collected early


@operation("auth.send_magic_link", access="public")
async def send_magic_link(ctx: Context, params: MagicLinkRequest) -> Done:
    """Mail a one-time sign-in link to the account with this address, if there is one (the
    answer is the same either way). `redirect_to` must start with one of the tenant's allowed
    URLs (site setting `auth_redirect_urls`)."""
    if params.redirect_to is not None:
        await _check_redirect(ctx, params.redirect_to)
    await _send(ctx, params.email, "magic_link", params.redirect_to)
    return Done()


@operation("auth.send_otp", access="public")
async def send_otp(ctx: Context, params: MailCodeRequest) -> Done:
    """Mail a six-digit sign-in code to the account with this address, if there is one (the
    answer is the same either way); older codes stop working."""
    await _send(ctx, params.email, "email_code", None)
    return Done()


@operation("auth.sign_in_with_magic_link", access="public")
async def sign_in_with_magic_link(ctx: Context, params: MagicLinkSignIn) -> TokenPair:
    """Trade the token of a magic link for a session (once)."""
    try:
        parsed = parse_opaque(params.token, "rml")
    except AuthenticationError:
        raise _invalid("this link is not valid", "token") from None
    if parsed.tenant != ctx.tenant:
        raise _invalid("this link is for another tenant", "token")
    async with ctx.platform.db.read(ctx.tenant) as conn:
        row = (
            (await conn.execute(select(user_tokens).where(user_tokens.c.id == parsed.id)))
            .mappings()
            .first()
        )
    if (
        row is None
        or row["purpose"] != "magic_link"
        or not same_hash(row["token_hash"], parsed.hash)
    ):
        raise _invalid("this link is not valid", "token")
    if row["used_at"] is not None:
        raise _invalid("this link was used already", "token")
    if row["expires_at"] <= ctx.now():
        raise _invalid("this link has expired", "token")
    user = await _spend(ctx, row)
    return await _sign_in(ctx, user, params.session_token, "magic_link")


@operation("auth.verify_otp", access="public")
async def verify_otp(ctx: Context, params: VerifyMailCodeRequest) -> TokenPair:
    """Trade a mailed six-digit code for a session (once). A few wrong guesses per address
    (and per client address) and the next wait."""
    address = params.email.lower()
    limits = (
        (f"mail-code:{ctx.tenant}:{address}", _GUESSES_PER_ADDRESS),
        (f"mail-code-from:{ctx.client_address}", _GUESSES_PER_CLIENT),
    )
    event = new_id()
    await take_or_refuse(ctx.platform.limiter, limits, CODE_TTL, "sign-in code guesses", event)
    now = ctx.now()
    user = await _active_user(ctx, params.email)
    wanted = _code_hash(ctx, user["id"] if user else "", params.code)
    async with ctx.platform.db.read(ctx.tenant) as conn:
        rows = (
            (
                await conn.execute(
                    select(user_tokens).where(
                        user_tokens.c.user_id == (user["id"] if user else ""),
                        user_tokens.c.purpose == "email_code",
                        user_tokens.c.used_at.is_(None),
                        user_tokens.c.expires_at > now,
                    )
                )
            )
            .mappings()
            .all()
        )
    row = next((r for r in rows if same_hash(r["token_hash"], wanted)), None)
    if user is None or row is None:
        raise _invalid("this code is wrong or expired", "code")
    user = await _spend(ctx, row)
    await ctx.platform.limiter.reset(limits[0][0])
    await ctx.platform.limiter.release(limits[1][0], event)
    return await _sign_in(ctx, user, params.session_token, "email_code")


# -- sending ------------------------------------------------------------------------------


async def _send(ctx: Context, email: str, purpose: Purpose, redirect_to: str | None) -> None:
    await recovery.count_mail(ctx, purpose, email)
    user = await _active_user(ctx, email)
    row_id = new_id()
    now = ctx.now()
    if purpose == "magic_link":
        link = make_opaque("rml", ctx.tenant, row_id)
        secret, token_hash, ttl = link.token, link.hash, LINK_TTL
    else:
        secret = f"{secrets.randbelow(10**6):06d}"
        token_hash, ttl = _code_hash(ctx, user["id"] if user else "", secret), CODE_TTL
    async with ctx.platform.db.write(ctx.tenant) as conn:
        # The same statements for an unknown address, matching no row.
        user_id = user["id"] if user else ""
        await conn.execute(
            user_tokens.update()
            .where(
                user_tokens.c.user_id == user_id,
                user_tokens.c.purpose == purpose,
                user_tokens.c.used_at.is_(None),
            )
            .values(used_at=now)
        )
        if user is not None:
            await conn.execute(
                user_tokens.insert().values(
                    id=row_id,
                    user_id=user["id"],
                    purpose=purpose,
                    token_hash=token_hash,
                    email=user["email"],
                    created_at=now,
                    expires_at=now + timedelta(seconds=ttl),
                )
            )
    if user is not None:
        _after_answer(_deliver(ctx, user, purpose, secret, redirect_to))


def _after_answer(work: Coroutine[Any, Any, None]) -> None:
    """Run `work` (a mail delivery) after the answer is sent: its time tells nothing."""
    task = asyncio.get_running_loop().create_task(work)
    _deliveries.add(task)
    task.add_done_callback(_deliveries.discard)


async def _deliver(
    ctx: Context, user: RowMapping, purpose: Purpose, secret: str, redirect_to: str | None
) -> None:
    model = {"name": user["first_name"] or user["username"], "username": user["username"]}
    if purpose == "magic_link":
        model["link"] = _link(ctx, secret, redirect_to)
        template = "magic_link"
    else:
        model["code"] = secret
        template = "sign_in_code"
    try:
        await send_template(ctx, template, [user["email"]], model, secret=secret)
        await events.record(ctx, f"{purpose}_sent", user["username"])
    except (ServiceUnavailableError, ValidationError) as exc:
        # Kept as failed in the outbox (or a tenant's template refused): not for the caller.
        logger.warning("%s mail for user %s not delivered: %s", purpose, user["id"], exc.message)
    except Exception:  # nobody awaits this task: say what went wrong here
        logger.exception("%s mail for user %s failed", purpose, user["id"])


def _link(ctx: Context, token: str, redirect_to: str | None) -> str:
    if redirect_to is not None:
        parts = urlsplit(redirect_to)
        query = urlencode([*parse_qsl(parts.query), ("token", token)])
        return urlunsplit(parts._replace(query=query))
    template = ctx.platform.settings.auth_link_url
    if template:
        return template.replace("{action}", "magic_link").replace("{token}", token)
    return token


async def _check_redirect(ctx: Context, redirect_to: str) -> None:
    """Refuse a `redirect_to` that does not start with one of the allowed URLs: same scheme
    and host (exactly), and a path under the allowed one."""
    async with ctx.platform.db.read(ctx.tenant) as conn:
        allowed = await challenges.site_setting(conn, REDIRECTS_SETTING)
    target = urlsplit(redirect_to)
    if isinstance(allowed, list) and not target.username and "\\" not in redirect_to:
        for entry in allowed:
            if isinstance(entry, str) and _under(target, urlsplit(entry)):
                return
    raise ValidationError(
        f"redirect_to is not among the tenant's allowed URLs (site setting {REDIRECTS_SETTING!r})",
        code="redirect_not_allowed",
        details={"field": "redirect_to"},
    )


def _under(target: Any, allowed: Any) -> bool:
    if (target.scheme, target.netloc.lower()) != (allowed.scheme, allowed.netloc.lower()):
        return False
    base = allowed.path.rstrip("/")
    return target.path == base or target.path.startswith(base + "/") or not base


# -- signing in ---------------------------------------------------------------------------


async def _active_user(ctx: Context, email: str) -> RowMapping | None:
    async with ctx.platform.db.read(ctx.tenant) as conn:
        return await accounts.find_by_email(conn, email, active_only=True)


async def _spend(ctx: Context, row: RowMapping) -> RowMapping:
    """Spend the token (once, however many try at the same time) and mark the address it
    was sent to verified; the user, when the address is still theirs and they are active."""
    now = ctx.now()
    async with ctx.platform.db.write(ctx.tenant) as conn:
        spent = await conn.execute(
            user_tokens.update()
            .where(user_tokens.c.id == row["id"], user_tokens.c.used_at.is_(None))
            .values(used_at=now)
        )
        user = (
            (
                await conn.execute(
                    select(users).where(
                        users.c.id == row["user_id"],
                        users.c.email == row["email"],
                        users.c.is_active.is_(True),
                    )
                )
            )
            .mappings()
            .first()
        )
        if spent.rowcount != 1 or user is None:
            raise _invalid("this sign-in mail no longer works", "token")
        if user["email_verified_at"] is None:
            await conn.execute(
                users.update().where(users.c.id == user["id"]).values(email_verified_at=now)
            )
    return user


async def _sign_in(ctx: Context, user: RowMapping, session_token: bool, via: str) -> TokenPair:
    await challenges.pass_gate(ctx, user, session_token=session_token, via=via)
    async with ctx.platform.db.write(ctx.tenant) as conn:
        await conn.execute(
            users.update().where(users.c.id == user["id"]).values(last_login=ctx.now())
        )
        pair = await open_session(ctx, conn, user["id"], with_session_token=session_token)
    await events.record(ctx, f"signed_in_with_{via}", user["username"])
    return pair


def _code_hash(ctx: Context, user_id: str, code: str) -> str:
    key = ctx.platform.access_tokens.derive("mail-codes")
    return hmac.new(key, f"{ctx.tenant}\0{user_id}\0{code}".encode(), hashlib.sha256).hexdigest()


def _invalid(why: str, field: str) -> AuthenticationError:
    return AuthenticationError(
        f"{why}; ask for a new mail", code="invalid_token", details={"field": field}
    )
