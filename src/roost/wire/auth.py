"""Types of the auth, API key, user and tenant operations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

from roost.wire.common import TenantName

Username = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=150,
        pattern=r"^[A-Za-z0-9_.@+-]+$",
        description="letters, digits and _ . @ + -",
    ),
]
UserId = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Email = Annotated[str, Meta(max_length=254, pattern=r"^$|^[^@\s]+@[^@\s]+\.[^@\s]+$")]
Password = Annotated[str, Meta(min_length=8, max_length=1024)]
AnyPassword = Annotated[str, Meta(min_length=1, max_length=1024)]
Scope = Annotated[str, Meta(pattern=r"^(\*|[a-z_]+:(\*|[a-z_]+))$", max_length=64)]
RoleName = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
Token = Annotated[str, Meta(min_length=1, max_length=4096)]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
TokenType = Literal["jwt", "api_key", "session_token"]


class LoginRequest(Struct, forbid_unknown_fields=True):
    username: Annotated[str, Meta(min_length=1, max_length=254)]
    password: AnyPassword
    session_token: bool = False


class TokenPair(Struct, omit_defaults=True):
    access: str
    refresh: str
    expires_in: int
    session_id: str
    token_type: str = "Bearer"
    session_token: str | None = None


class RefreshRequest(Struct, forbid_unknown_fields=True):
    refresh: Token


class VerifyRequest(Struct, forbid_unknown_fields=True):
    token: Token
    token_type: TokenType = "jwt"


class VerifyResult(Struct, omit_defaults=True):
    """`auth.verify` (the SDK's `VerifyResult`, from `auth.validate_jwt`): whether the token
    is valid now, whose it is, or why not; its truth value is `valid`."""

    valid: bool
    user_id: str | None = None
    tenant: str | None = None
    expires_at: datetime | None = None
    reason: str | None = None

    def __bool__(self) -> bool:
        return self.valid


class EmailRequest(Struct, forbid_unknown_fields=True):
    email: Annotated[str, Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]


class TokenRequest(Struct, forbid_unknown_fields=True):
    token: Annotated[str, Meta(min_length=1, max_length=300)]


class PasswordResetRequest(Struct, forbid_unknown_fields=True):
    token: Annotated[str, Meta(min_length=1, max_length=300)]
    new_password: Password


class UserRef(Struct, forbid_unknown_fields=True):
    """A user named by `username` or by `id`: exactly one of them."""

    username: Username | None = None
    id: UserId | None = None


class MintRequest(UserRef, forbid_unknown_fields=True):
    expires_in: Annotated[int, Meta(ge=60, le=86400)] = 900


class MintedToken(Struct):
    access: str
    expires_in: int
    session_id: str
    user_id: str
    token_type: str = "Bearer"


class ProfileUpdate(Struct, forbid_unknown_fields=True):
    email: Email | None = None
    first_name: Annotated[str, Meta(max_length=150)] | None = None
    last_name: Annotated[str, Meta(max_length=150)] | None = None


class PreferencesUpdate(Struct, forbid_unknown_fields=True):
    preferences: dict[str, Any]
    replace: bool = False  # False: merge top-level keys (a null value removes its key)


class SiteSettingsUpdate(Struct, forbid_unknown_fields=True):
    settings: dict[str, Any]
    replace: bool = False  # False: merge top-level keys (a null value removes its key)


class ScopeSpec(Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(pattern=r"^[a-z_]+:[a-z_]+$", max_length=64)]
    description: Annotated[str, Meta(max_length=500)] = ""


class ScopeRef(Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(pattern=r"^[a-z_]+:[a-z_]+$", max_length=64)]


class ScopeInfo(Struct):
    name: str
    description: str
    builtin: bool  # one the platform's operations check


class User(Struct):
    id: str
    username: str
    email: str
    first_name: str
    last_name: str
    is_active: bool
    is_staff: bool
    is_superuser: bool
    roles: list[str]
    scopes: list[str]
    created_at: datetime
    last_login: datetime | None = None
    email_verified: bool = False
    is_anonymous: bool = False  # signed in with auth.sign_in_anonymously, not upgraded yet


class Whoami(Struct, omit_defaults=True):
    """The caller as the server sees this credential (no database read)."""

    kind: Literal["user", "api_key", "function"]
    tenant: str
    user_id: str
    username: str
    scopes: list[str]
    session_id: str | None = None
    api_key_id: str | None = None


class Session(Struct):
    id: str
    created_at: datetime
    expires_at: datetime
    user_agent: str
    address: str
    current: bool


class SessionRef(Struct, forbid_unknown_fields=True):
    id: Annotated[str, Meta(min_length=1, max_length=64)]


class AnonymousSignIn(Struct, forbid_unknown_fields=True):
    session_token: bool = False


class UpgradeAnonymousRequest(Struct, forbid_unknown_fields=True):
    email: Annotated[str, Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
    password: Password
    username: Username | None = None  # else the anonymous one stays


class RegisterRequest(Struct, forbid_unknown_fields=True):
    username: Username
    password: Password
    email: Email = ""
    confirm_password: str | None = None
    first_name: Annotated[str, Meta(max_length=150)] = ""
    last_name: Annotated[str, Meta(max_length=150)] = ""


class CreateUserRequest(RegisterRequest, forbid_unknown_fields=True):
    is_active: bool = True
    is_staff: bool = False
    is_superuser: bool = False
    roles: list[RoleName] = []


class ListUsersRequest(Struct, forbid_unknown_fields=True):
    search: Annotated[str, Meta(max_length=150)] | None = None
    is_active: bool | None = None
    page: Annotated[int, Meta(ge=1)] = 1
    page_size: Annotated[int, Meta(ge=1, le=500)] = 50


class UserPage(Struct):
    items: list[User]
    total: int
    page: int
    page_size: int


class ChangePasswordRequest(Struct, forbid_unknown_fields=True):
    old_password: AnyPassword
    new_password: Password


class CreateApiKeyRequest(Struct, forbid_unknown_fields=True):
    name: Name
    scopes: Annotated[list[Scope], Meta(max_length=100)] = []
    expires_in: Annotated[int, Meta(ge=60, le=10 * 365 * 86400)] | None = None
    expires_at: datetime | None = None


class ApiKey(Struct):
    id: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked: bool


class CreatedApiKey(Struct):
    id: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    key: str


class ApiKeyRef(Struct, forbid_unknown_fields=True):
    id: Annotated[str, Meta(min_length=1, max_length=64)]


class CreateRoleRequest(Struct, forbid_unknown_fields=True):
    name: RoleName
    scopes: Annotated[list[Scope], Meta(max_length=200)] = []
    description: Annotated[str, Meta(max_length=500)] = ""


class UpdateRoleRequest(Struct, forbid_unknown_fields=True):
    name: RoleName
    scopes: Annotated[list[Scope], Meta(max_length=200)] | None = None
    description: Annotated[str, Meta(max_length=500)] | None = None


class RoleRef(Struct, forbid_unknown_fields=True):
    name: RoleName


class RoleAssignment(Struct, forbid_unknown_fields=True):
    roles: Annotated[list[RoleName], Meta(min_length=1, max_length=50)]
    usernames: Annotated[list[Username], Meta(min_length=1, max_length=500)]
    expires_at: datetime | None = None  # the roles lapse then (assign_roles only)


class UpdateUserRequest(UserRef, forbid_unknown_fields=True):
    email: Email | None = None
    first_name: Annotated[str, Meta(max_length=150)] | None = None
    last_name: Annotated[str, Meta(max_length=150)] | None = None
    is_active: bool | None = None
    is_staff: bool | None = None
    password: Password | None = None


class Role(Struct):
    name: str
    scopes: list[str]
    description: str
    builtin: bool


class CreateTenantRequest(Struct, forbid_unknown_fields=True):
    name: TenantName
    display_name: Annotated[str, Meta(max_length=200)] = ""
    admin_username: Username | None = None
    admin_password: Password | None = None
    admin_email: Email = ""


class TenantRef(Struct, forbid_unknown_fields=True):
    name: TenantName


class KVTtlBoundsRequest(Struct, forbid_unknown_fields=True):
    name: TenantName
    min_ttl: Annotated[int, Meta(ge=1)] | None = None
    max_ttl: Annotated[int, Meta(ge=1)] | None = None


class KVTtlBounds(Struct):
    name: str
    min_ttl: int | None
    max_ttl: int | None


class Tenant(Struct):
    name: str
    display_name: str
    created_at: datetime


# -- one person across tenants (services/auth/memberships.py) --------------------------------


class SwitchTenantRequest(Struct, forbid_unknown_fields=True):
    tenant: TenantName
    session_token: bool = False


class InviteMemberRequest(Struct, forbid_unknown_fields=True):
    """An offer of the tenant's account `username` to a person signed in elsewhere."""

    username: Username
    expires_in: Annotated[int, Meta(ge=60, le=7 * 86400)] = 86400


class Invitation(Struct):
    code: str
    tenant: str
    username: str
    expires_at: datetime


class AcceptInvitationRequest(Struct, forbid_unknown_fields=True):
    code: Token


class MemberRef(Struct, forbid_unknown_fields=True):
    username: Username


class LeaveTenantRequest(Struct, forbid_unknown_fields=True):
    tenant: TenantName


class Membership(Struct, omit_defaults=True):
    """One tenant a person may work in: `home` is the account they sign in with, the others
    are reached with `auth.switch_tenant`. `username` and `roles` are the account's in that
    tenant (left out where the caller may not see them)."""

    tenant: str
    display_name: str
    home: bool
    username: str | None = None
    roles: list[str] | None = None
