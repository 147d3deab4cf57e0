"""Attacks on mail.send (issue 11), against a real server on SQLite and PostgreSQL delivering
to a real SMTP server on loopback: a small request that renders a huge message, and control
characters that used to be delivered and then fail the call (so the SDK's retry sent the
message again). Every refusal is a 4xx naming the field, with nothing delivered or kept."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import pytest

from roost import AsyncClient, PayloadTooLargeError, ValidationError
from tests.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, RunningServer, unique
from tests.smtp_relay import Relay, smtp_relay

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("backend", ["sqlite", "postgresql"])]


@pytest.fixture
def relay() -> Iterator[Relay]:
    with smtp_relay() as running:
        yield running


async def _mail_admin(client: AsyncClient) -> AsyncClient:
    admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
    key = await admin.api_keys.create(unique("mailer"), ["mail:send", "mail:admin", "mail:read"])
    return await client.auth.sign_in_with_token(key["key"], "api_key")


async def test_a_small_request_cannot_render_a_huge_message(
    make_server: Callable[..., RunningServer], relay: Relay, backend: str
) -> None:
    running = make_server(backend, smtp_url=relay.url)
    to = f"{unique('big')}@example.com"
    async with AsyncClient(api_url=running.url, max_retries=0) as client:
        mail = (await _mail_admin(client)).mail
        await mail.templates.put("blowup", "Hi", "{{x}}" * 20_000)  # 100 KB, saved once
        model = {"x": "A" * 2000}  # a 2 KB request that would render 40 MB
        with pytest.raises(PayloadTooLargeError) as caught:
            await mail.send("blowup", to, model=model)
        assert (caught.value.status_code, caught.value.details["field"]) == (413, "model")
        assert "ROOST_MAIL_MAX_BYTES" in caught.value.message
        await mail.templates.put("subject_blowup", "{{x}}" * 10, "Hi")
        with pytest.raises(ValidationError) as refused:
            await mail.send("subject_blowup", to, model={"x": "B" * 100})
        assert refused.value.details["field"] == "model"
        assert await mail.outbox(to=to) == []
        sent = await mail.send("blowup", to, model={"x": "ok"})  # a fitting one still goes
        assert sent["status"] == "sent"
    assert len(relay.received) == 1


async def test_control_characters_are_refused_before_anything_is_sent(
    make_server: Callable[..., RunningServer], relay: Relay, backend: str
) -> None:
    running = make_server(backend, smtp_url=relay.url)
    to = f"{unique('nul')}@example.com"
    async with AsyncClient(api_url=running.url) as client:  # retries on: a 500 would resend
        mail = (await _mail_admin(client)).mail
        attacks: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("from_email", lambda: mail.send("welcome", to, "Evil\x00 <a@b.com>", {"name": "x"})),
            ("from_email", lambda: mail.send("welcome", to, "a\x00@b.com", {"name": "x"})),
            ("from_email", lambda: mail.send("welcome", to, "Ev\x07il <a@b.com>", {"name": "x"})),
            ("to", lambda: mail.send("welcome", f"a\x00{to}", model={"name": "x"})),
            ("model.name", lambda: mail.send("welcome", to, model={"name": "Ann\x00"})),
            ("model.name", lambda: mail.send("welcome", to, model={"name": "Ann\x1b[2J"})),
            ("subject", lambda: mail.templates.put(unique("t"), "Hi\x00", "text")),
            ("text", lambda: mail.templates.put(unique("t"), "Hi", "te\x00xt")),
            ("html", lambda: mail.templates.put(unique("t"), "Hi", "text", "<p>\x00</p>")),
        ]
        for field, attack in attacks:
            with pytest.raises(ValidationError) as caught:
                await attack()
            assert caught.value.status_code == 400, field
            where = str(caught.value.details.get("field"))
            assert where.split("[")[0] == field, (field, caught.value.details)
        assert await mail.outbox(to=to) == []
    assert relay.received == []
