"""The log redaction's shortcut: a text it lets through unsearched is one the full redaction
would leave as it is."""

from __future__ import annotations

import random

from roost.server.redaction import REDACTED, redact, redact_fully

# pieces of what each pattern looks for, and of what it does not
_PIECES = [
    "/api/v1/database/get",
    "/storage/signed/",
    "/api/v1/ws",
    "?",
    "&",
    ";",
    "=",
    "%5F",
    "%2e",
    "%",
    "+",
    " ",
    ":",
    "'",
    '"',
    "b'",
    "\n",
    "access_token",
    "api_key",
    "Token",
    "X-Amz-Signature",
    "Authorization",
    "proxy-authorization",
    "Cookie",
    "set-cookie",
    "x-session-token",
    "X-Api-Key",
    "Bearer",
    "api-key",
    "Basic",
    "rak_abc_0123456789abcdef01234567_",
    "rst_x_0123456789abcdef01234567_",
    "abcdefghijklmnopqrstuvwxyz",
    "eyJhbGciOi",
    "eyjhbgcioi",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
    ".",
    "coo\u212aie",  # the Kelvin sign folds to k
    "1.1",
    "127.0.0.1:40000",
    "POST",
]


def test_the_shortcut_changes_nothing_the_full_redaction_would_change() -> None:
    rng = random.Random(20)
    changed = 0
    for _ in range(20_000):
        text = "".join(rng.choice(_PIECES) for _ in range(rng.randrange(1, 9)))
        assert redact(text) == redact_fully(text), text
        changed += redact_fully(text) != text
    assert changed > 1000  # the texts did exercise the patterns


def test_plain_access_line_arguments_pass_and_credentials_do_not() -> None:
    for plain in ("/api/v1/database/get", "127.0.0.1:40000", "POST", "1.1"):
        assert redact(plain) == plain
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    for secret in (
        f"/api/v1/ws?access_token={jwt}",
        "/api/v1/ws?api%5Fkey=rak_abc_0123456789abcdef01234567_secretsecretsecret",
        f"Bearer {jwt}",
        f"/api/v1/x/{jwt}",
        "/api/v1/storage/signed/abcdef",
    ):
        assert REDACTED in redact(secret)
