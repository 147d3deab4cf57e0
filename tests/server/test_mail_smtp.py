"""Mail delivered over SMTP to a real SMTP server on loopback (aiosmtpd), and what happens
when the relay refuses or is not there."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from roost import AsyncClient, ServiceUnavailableError
from roost.errors import ConfigurationError
from roost.settings import load_settings
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, free_port
from tests.smtp_relay import body_of

pytestmark = pytest.mark.anyio


@dataclass
class Relay:
    """What the SMTP server received, and what it should answer."""

    port: int
    received: list[tuple[Envelope, EmailMessage]] = field(default_factory=list)
    refuse_with: str | None = None

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        if self.refuse_with:
            return self.refuse_with
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        self.received.append((envelope, message))
        return "250 OK"


def _authenticate(
    server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"app", b"s3cret")
    return AuthResult(success=ok)


@pytest.fixture
def relay() -> Iterator[Relay]:
    handler = Relay(free_port())
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=handler.port,
        authenticator=_authenticate,
        auth_require_tls=False,
    )
    controller.start()
    yield handler
    controller.stop()


async def _admin(running: RunningServer, client: AsyncClient) -> AsyncClient:
    return await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)


async def test_mail_reaches_the_relay_with_its_parts(
    make_server: Callable[..., RunningServer], relay: Relay
) -> None:
    running = make_server(
        smtp_url=f"smtp://app:s3cret@127.0.0.1:{relay.port}?starttls=off",
        mail_from="Roost Test <noreply@roost.test>",
    )
    async with AsyncClient(api_url=running.url) as client:
        admin = await _admin(running, client)
        await admin.mail.templates.put(
            "hello", "Hi {{ name }}", "Plain {{ name }}", "<p>{{ name }}</p>"
        )
        sent = await admin.mail.send(
            "hello", ["ann@example.com", "bo@example.com"], model={"name": "Ann"}
        )
        assert sent["status"] == "sent"
        assert (await admin.mail.outbox(to="bo@example.com"))[0]["status"] == "sent"
    [(envelope, message)] = relay.received
    assert envelope.rcpt_tos == ["ann@example.com", "bo@example.com"]
    assert envelope.mail_from == "noreply@roost.test"
    assert (message["Subject"], message["From"]) == ("Hi Ann", "Roost Test <noreply@roost.test>")
    assert body_of(message, "plain").strip() == "Plain Ann"
    assert body_of(message, "html").strip() == "<p>Ann</p>"


async def test_a_refused_or_missing_relay_fails_the_call_and_keeps_the_message(
    make_server: Callable[..., RunningServer], relay: Relay
) -> None:
    relay.refuse_with = "554 no thanks"
    refused = make_server(smtp_url=f"smtp://app:s3cret@127.0.0.1:{relay.port}?starttls=off")
    nobody = make_server(smtp_url=f"smtp://127.0.0.1:{free_port()}?starttls=off")
    for running, why in ((refused, "no thanks"), (nobody, "connect")):
        async with AsyncClient(api_url=running.url, max_retries=0) as client:
            admin = await _admin(running, client)
            with pytest.raises(ServiceUnavailableError) as caught:
                await admin.mail.send_welcome("ann@example.com", {"name": "Ann"})
            assert caught.value.code == "mail_not_delivered"
            [kept] = await admin.mail.outbox()
            assert (kept["status"], kept["id"]) == ("failed", caught.value.details["id"])
            assert why in kept["error"]
    assert relay.received == []


def test_a_bad_smtp_url_is_refused_naming_the_variable(tmp_path: object) -> None:
    from roost.backends.mail import open_mailer

    with pytest.raises(ConfigurationError) as caught:
        load_settings(smtp_url="mail://relay")
    assert "ROOST_SMTP_URL" in caught.value.message
    with pytest.raises(ConfigurationError) as caught:
        open_mailer("smtp://relay:587?starttls=maybe", Path("unused"))
    assert "ROOST_SMTP_URL" in caught.value.message
