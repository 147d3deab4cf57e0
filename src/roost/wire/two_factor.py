"""Types of two-factor sign-in (TOTP) and passwordless mail sign-in (magic links, one-time
codes)."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

from roost.wire.auth import AnyPassword

Challenge = Annotated[str, Meta(min_length=1, max_length=300)]
# Six digits from an authenticator, or a recovery code (`xxxxx-xxxxx`, dash optional).
FactorCode = Annotated[str, Meta(min_length=6, max_length=11, pattern=r"^[0-9a-fA-F-]+$")]
SixDigits = Annotated[str, Meta(min_length=6, max_length=6, pattern=r"^[0-9]{6}$")]
MailAddress = Annotated[
    str, Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
]
RedirectUrl = Annotated[str, Meta(min_length=1, max_length=2000, pattern=r"^https?://[^\s]+$")]


class EnrolRequest(Struct, forbid_unknown_fields=True):
    challenge: Challenge | None = None  # from a "totp_enrolment" answer; else the signed-in user


class TotpEnrolment(Struct):
    """A new (unconfirmed) factor: the secret, as text and as an otpauth:// URI for a QR
    code, and the recovery codes, shown this once."""

    secret: str
    uri: str
    recovery_codes: list[str]


class CodeRequest(Struct, forbid_unknown_fields=True):
    code: FactorCode


class DisableRequest(Struct, forbid_unknown_fields=True):
    code: FactorCode | None = None
    password: AnyPassword | None = None


class VerifyTotpRequest(Struct, forbid_unknown_fields=True):
    challenge: Challenge
    code: FactorCode
    session_token: bool = False


class TotpStatus(Struct):
    enabled: bool  # confirmed: sign-in asks for a code
    pending: bool  # enrolled, not confirmed yet
    required: bool  # the tenant requires it for one of the user's roles
    recovery_codes_left: int


class MagicLinkRequest(Struct, forbid_unknown_fields=True):
    email: MailAddress
    redirect_to: RedirectUrl | None = None


class MailCodeRequest(Struct, forbid_unknown_fields=True):
    email: MailAddress


class VerifyMailCodeRequest(Struct, forbid_unknown_fields=True):
    email: MailAddress
    code: SixDigits
    session_token: bool = False


class MagicLinkSignIn(Struct, forbid_unknown_fields=True):
    token: Annotated[str, Meta(min_length=1, max_length=300)]
    session_token: bool = False
