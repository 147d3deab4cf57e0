"""`roost.webhooks`: Standard Webhooks signatures, against the reference vectors and the
reference Python library (`standardwebhooks`), and every way a forged delivery fails."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime

import pytest
import standardwebhooks

from roost import ConfigurationError, RoostError
from roost.webhooks import WebhookVerificationError, generate_secret, sign, verify

# The reference library's own test vector (standard-webhooks, libraries/python/tests)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
STAMP = 1614265330
BODY = b'{"test": 2432232314}'
SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def headers(signature: str = SIGNATURE, stamp: str = str(STAMP)) -> dict[str, str]:
    return {"webhook-id": MSG_ID, "webhook-timestamp": stamp, "webhook-signature": signature}


def test_sign_matches_the_reference_vector() -> None:
    assert sign(SECRET, msg_id=MSG_ID, timestamp=STAMP, body=BODY) == SIGNATURE


def test_verify_accepts_the_reference_vector_whatever_the_header_case() -> None:
    verify(SECRET, headers(), BODY, now=STAMP)
    verify(SECRET, {k.title(): v for k, v in headers().items()}, BODY, now=STAMP + 300)
    verify(SECRET, headers(), BODY, now=STAMP - 300)  # the tolerance is inclusive


def test_one_matching_signature_among_several_is_enough() -> None:
    """Rotation sends several; unknown versions and garbage are skipped."""
    several = f"v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,abc v1a,xyz, junk {SIGNATURE}"
    verify(SECRET, headers(several), BODY, now=STAMP)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"body": BODY + b" "}, "no signature"),
        ({"secret": "whsec_" + base64.b64encode(b"another key of 24 bytes!").decode()}, "no sig"),
        ({"headers": headers("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=")}, "no sig"),
        ({"headers": headers(SIGNATURE.removeprefix("v1,"))}, "no signature"),  # no version
        ({"headers": headers("v1a," + SIGNATURE[3:])}, "no signature"),  # another scheme
        ({"headers": headers(stamp="hello")}, "not Unix seconds"),
        ({"headers": headers(stamp="1614265330.0")}, "not Unix seconds"),
        ({"headers": headers(stamp="-1614265330")}, "not Unix seconds"),
        ({"headers": headers(stamp=" 1614265330")}, "not Unix seconds"),
        ({"now": STAMP + 301}, "too old"),
        ({"now": STAMP - 301}, "future"),
        ({"now": STAMP + 20, "tolerance": 10}, "too old"),
    ],
)
def test_a_forged_or_stale_delivery_is_refused(change: dict[str, object], reason: str) -> None:
    arguments: dict[str, object] = {
        "secret": SECRET,
        "headers": headers(),
        "body": BODY,
        "now": STAMP,
    }
    arguments.update(change)
    with pytest.raises(WebhookVerificationError, match=reason) as caught:
        verify(**arguments)  # type: ignore[arg-type]
    assert isinstance(caught.value, RoostError)
    assert caught.value.code == "webhook_verification_failed"


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_named(missing: str) -> None:
    sent = headers()
    del sent[missing]
    with pytest.raises(WebhookVerificationError, match=missing):
        verify(SECRET, sent, BODY, now=STAMP)


def test_a_secret_without_the_prefix_is_its_own_bytes() -> None:
    expected = hmac.new(b"plain secret", b"m.5.{}", hashlib.sha256).digest()
    assert sign("plain secret", msg_id="m", timestamp=5, body=b"{}") == (
        "v1," + base64.b64encode(expected).decode()
    )


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_not*base64!"])
def test_an_unusable_secret_is_a_configuration_error(secret: str) -> None:
    with pytest.raises(ConfigurationError):
        sign(secret, msg_id="m", timestamp=5, body=b"{}")
    with pytest.raises(ConfigurationError):
        verify(secret, headers(), BODY, now=STAMP)


def test_generated_secrets_are_whsec_of_32_random_bytes() -> None:
    first, second = generate_secret(), generate_secret()
    assert first != second
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) == 32


def test_the_reference_library_and_ours_verify_each_other() -> None:
    secret = generate_secret()
    now = int(time.time())
    body = b'{"type":"record.created","data":{"id":1,"name":"\xc3\xa9"}}'
    ours = sign(secret, msg_id="evt_1", timestamp=now, body=body)
    reference = standardwebhooks.Webhook(secret)
    sent = {"webhook-id": "evt_1", "webhook-timestamp": str(now), "webhook-signature": ours}
    assert reference.verify(body, sent) == {
        "type": "record.created",
        "data": {"id": 1, "name": "é"},
    }
    theirs = reference.sign("evt_2", datetime.fromtimestamp(now, UTC), body.decode())
    verify(
        secret,
        {"webhook-id": "evt_2", "webhook-timestamp": str(now), "webhook-signature": theirs},
        body,
    )
