"""The signed-in user's own profile (names, email) and preferences (a JSON object the app
keeps for the user)."""

from __future__ import annotations

from typing import Any

from roost.backends.sql.tables import users
from roost.errors import ConflictError, ValidationError
from roost.services import accounts
from roost.services.auth import recovery
from roost.services.context import Context
from roost.services.payloads import merged_object
from roost.services.registry import operation
from roost.wire.auth import PreferencesUpdate, ProfileUpdate, User
from roost.wire.common import Empty

_PREFERENCES_LIMIT = 64 * 1024


@operation("auth.update_profile")
async def update_profile(ctx: Context, params: ProfileUpdate) -> User:
    """Change your own names or email; a new email is unverified until you follow the link
    mailed to it."""
    principal = ctx.require_user()
    changes: dict[str, Any] = {
        name: getattr(params, name)
        for name in ("email", "first_name", "last_name")
        if getattr(params, name) is not None
    }
    if not changes:
        raise ValidationError(
            "nothing to update: send email, first_name or last_name", details={"field": "email"}
        )
    async with ctx.platform.db.write(ctx.tenant) as conn:
        user = await accounts.live_user(conn, principal.user_id)
        new_email = params.email is not None and accounts.email_key(
            params.email
        ) != accounts.email_key(user["email"])
        if new_email:
            accounts.check_email(params.email or "")
            if params.email and await accounts.email_taken(conn, params.email):
                raise ConflictError(
                    "that email belongs to another user", details={"field": "email"}
                )
            changes["email_verified_at"] = None
        await conn.execute(users.update().where(users.c.id == user["id"]).values(**changes))
        user = await accounts.live_user(conn, principal.user_id)
        answer = await accounts.to_user(conn, user, ctx.now())
    if new_email:
        await recovery.send_verification(ctx, user)
    return answer


@operation("auth.get_preferences", read_only=True)
async def get_preferences(ctx: Context, params: Empty) -> dict[str, Any]:
    """Your preferences (an empty object until you set some)."""
    principal = ctx.require_principal()
    async with ctx.platform.db.read(ctx.tenant) as conn:
        user = await accounts.live_user(conn, principal.user_id)
    return dict(user["preferences"] or {})


@operation("auth.update_preferences")
async def update_preferences(ctx: Context, params: PreferencesUpdate) -> dict[str, Any]:
    """Merge keys into your preferences (a null value removes its key), or with `replace`
    set them as given. At most 64 KiB of JSON."""
    principal = ctx.require_principal()
    async with ctx.platform.db.write(ctx.tenant) as conn:
        user = await accounts.live_user(conn, principal.user_id)
        merged = merged_object(
            user["preferences"],
            params.preferences,
            replace=params.replace,
            field="preferences",
            limit=_PREFERENCES_LIMIT,
        )
        await conn.execute(
            users.update().where(users.c.id == user["id"]).values(preferences=merged)
        )
    return merged
