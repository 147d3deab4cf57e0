"""Attacks through webhook URLs (SSRF), against a real receiver on loopback.

A tenant chooses the URL; the server must not call its own network with it. Loopback is
where the receiver lives, so these tests list 127.0.0.1 in the allow list when they mean a
destination to be reachable, and leave it out when they mean it to be refused. Host names
resolve through `dns`, a stand-in for the resolver (socket.getaddrinfo) that answers for
names under `.test` as each test says; every other name goes to the real one.

- Names that resolve to a private address are refused, and so is a name of which any one
  address is; a name that does not resolve is `host_unresolved`.
- DNS rebinding: the connection goes to the address that was checked, whatever the resolver
  answers later; the Host header and the TLS server name stay the URL's (an https receiver
  whose certificate names only the host name is verified through the pinned address).
- No redirect is followed, an endless answer is read no further than 64 KiB, and the
  deadline bounds the whole attempt (an answer dripping a byte at a time included).
- Nothing raises for network trouble, and no error carries the URL (it may hold a token).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from roost.clock import Clock
from roost.services.outbound import AllowList, OutboundRefused, check_headers, post_event
from roost.webhooks import generate_secret, verify
from tests.clocks import ShiftedClock
from tests.conftest import free_port
from tests.fake_dns import FakeDNS
from tests.fake_dns import dns as dns  # the fixture
from tests.waiting import wait_until
from tests.webhook_receiver import Reply, WebhookReceiver, webhook_receiver

pytestmark = pytest.mark.anyio

LOOPBACK = AllowList.parse("127.0.0.1")
BODY = json.dumps({"type": "record.created", "data": {"id": 7}}).encode()


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as running:
        yield running


async def post(url: str, allow: AllowList = LOOPBACK, **options: Any) -> Any:
    arguments: dict[str, Any] = {
        "body": BODY,
        "event_id": "evt_1",
        "secret": SECRET,
        "allow": allow,
        "timeout": 10.0,
        "clock": Clock(),
    }
    arguments.update(options)
    return await post_event(url, **arguments)


SECRET = generate_secret()


def arrivals(receiver: WebhookReceiver) -> Callable[[], int]:
    before = len(receiver.received)
    return lambda: len(receiver.received) - before


async def test_a_delivery_is_signed_and_carries_the_event(receiver: WebhookReceiver) -> None:
    clock = ShiftedClock()
    clock.advance(1000)  # the signature's timestamp is the platform's clock
    count = arrivals(receiver)
    result = await post(
        receiver.url_for("/hooks/a?x=1"),
        clock=clock,
        event_id="evt_abc",
        headers={"X-Trace": "t1", "Authorization": "Bearer for-the-receiver"},
    )
    assert (result.status, result.error, result.delivered) == (200, None, True)
    assert count() == 1
    got = receiver.received[-1]
    assert (got.method, got.path, got.json()) == ("POST", "/hooks/a", json.loads(BODY))
    assert got.headers["webhook-id"] == "evt_abc"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-trace"] == "t1"
    assert got.headers["authorization"] == "Bearer for-the-receiver"
    assert got.headers["host"] == f"127.0.0.1:{receiver.port}"
    stamp = int(got.headers["webhook-timestamp"])
    assert abs(stamp - clock.time()) < 5
    verify(SECRET, got.headers, got.body, now=stamp)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Webhook-Id": "forged"}, "set by the server"),
        ({"webhook-signature": "v1,forged"}, "set by the server"),
        ({"Host": "internal.example"}, "set by the server"),
        ({"Content-Length": "0"}, "set by the server"),
        ({"X-A": "b\r\nInjected: 1"}, "printable ASCII"),
        ({"Authorization": "Bearer s3cret\n"}, "printable ASCII"),
        ({"X-A": "\u00e9"}, "printable ASCII"),
        ({"X-A": "\x00"}, "printable ASCII"),
        ({"X-A": "v" * 4097}, "at most 4096"),
        ({"bad name": "v"}, "HTTP token"),
        ({"X-\r\nA": "v"}, "HTTP token"),
        ({f"X-{n}": "v" for n in range(33)}, "at most 32"),
    ],
)
async def test_headers_that_could_forge_or_inject_are_refused_without_their_value(
    receiver: WebhookReceiver, headers: dict[str, str], reason: str
) -> None:
    with pytest.raises(OutboundRefused, match=reason) as caught:
        check_headers(headers, field="target.headers")
    assert caught.value.details == {"field": "target.headers"}
    count = arrivals(receiver)
    result = await post(receiver.url, headers=headers)
    assert (result.status, result.refused) == (None, True)
    assert reason in (result.error or "")
    assert "s3cret" not in (result.error or "")
    assert count() == 0


async def test_loopback_is_refused_by_default(receiver: WebhookReceiver) -> None:
    count = arrivals(receiver)
    for url in (receiver.url, receiver.url_for("/", host="localhost")):
        result = await post(url, allow=AllowList())
        assert (result.status, result.refused, result.delivered) == (None, True, False)
        assert "loopback" in (result.error or "")
    assert count() == 0


async def test_numeric_disguises_are_refused_even_where_the_address_is_allowed(
    receiver: WebhookReceiver,
) -> None:
    count = arrivals(receiver)
    for host in ("2130706433", "0x7f.1", "127.1", "0x7f000001"):
        result = await post(receiver.url_for("/", host=host))
        assert result.refused, host
    result = await post(f"http://a@127.0.0.1:{receiver.port}/")
    assert result.refused
    assert count() == 0


async def test_names_resolving_to_refused_addresses_are_refused(dns: FakeDNS) -> None:
    dns["intranet.test"] = [["10.0.0.5"]]
    dns["metadata.test"] = [["169.254.169.254"]]
    dns["mixed.test"] = [["93.184.216.34", "127.0.0.1"]]  # one bad address is enough
    dns["mapped.test"] = [["::ffff:10.0.0.5"]]
    for name, why in (
        ("intranet", "private"),
        ("metadata", "link-local"),
        ("mixed", "loopback"),
        ("mapped", "IPv4-mapped"),
    ):
        with pytest.raises(OutboundRefused, match=why) as caught:
            await AllowList().resolve(f"http://{name}.test/hook")
        assert "10.0.0.5" not in caught.value.message  # nothing of the internal DNS leaks
    with pytest.raises(OutboundRefused) as caught:
        await AllowList().resolve("http://nowhere.test/")
    assert caught.value.code == "host_unresolved"
    result = await post("http://nowhere.test/")
    assert (result.status, result.refused) == (None, False)  # worth retrying: DNS may heal


async def test_listed_names_and_networks_are_permitted(dns: FakeDNS) -> None:
    dns["hooks.test"] = [["10.1.2.3"]]
    assert await AllowList.parse("hooks.test").resolve("http://hooks.test/") == ["10.1.2.3"]
    assert await AllowList.parse("10.0.0.0/8").resolve("http://hooks.test/") == ["10.1.2.3"]
    with pytest.raises(OutboundRefused):
        await AllowList.parse("other.test,11.0.0.0/8").resolve("http://hooks.test/")


async def test_dns_rebinding_cannot_move_the_connection(
    receiver: WebhookReceiver, dns: FakeDNS
) -> None:
    """The first answer passes the check; every later one names another address, where
    nothing listens (an internal service, in an attack). The request reaches the checked
    address, with the URL's host in its Host header, and the resolver is asked once."""
    dns["rebind.test"] = [["127.0.0.1"], ["127.0.0.2"]]
    count = arrivals(receiver)
    result = await post(receiver.url_for("/rebound", host="rebind.test"))
    assert result.delivered, result.error
    assert count() == 1
    assert receiver.received[-1].headers["host"] == f"rebind.test:{receiver.port}"
    assert dns.asked["rebind.test"] == 1


async def test_tls_verifies_the_urls_host_through_the_pinned_address(dns: FakeDNS) -> None:
    """The certificate names hooks.test only: the handshake to 127.0.0.1 succeeds because the
    server name and the check are the URL's host; by address it fails verification."""
    dns["hooks.test"] = [["127.0.0.1"]]
    with webhook_receiver(tls_names=["hooks.test"]) as secure:
        tls = secure.client_tls()
        result = await post(secure.url_for("/h", host="hooks.test"), tls=tls)
        assert result.delivered, result.error
        assert secure.received[-1].headers["host"] == f"hooks.test:{secure.port}"
        result = await post(secure.url_for("/h"), tls=tls)
        assert result.status is None
        assert "certificate" in (result.error or "").lower()
        assert len(secure.received) == 1


async def test_redirects_are_not_followed(receiver: WebhookReceiver) -> None:
    count = arrivals(receiver)
    receiver.reply(Reply(status=307, headers={"location": receiver.url_for("/elsewhere")}))
    result = await post(receiver.url_for("/first"))
    assert (result.status, result.delivered) == (307, False)
    assert "redirects are not followed" in (result.error or "")
    assert count() == 1


async def test_failures_carry_the_status_and_retry_after(receiver: WebhookReceiver) -> None:
    receiver.reply(Reply(status=503, headers={"retry-after": "7"}), Reply(status=410))
    first, second = await post(receiver.url), await post(receiver.url)
    assert (first.status, first.error, first.retry_after) == (503, "HTTP 503", 7.0)
    assert (second.status, second.delivered, second.refused) == (410, False, False)


async def test_an_endless_answer_is_read_no_further_than_the_cap(
    receiver: WebhookReceiver,
) -> None:
    """Read whole, it would run to the deadline; capped, the 200 counts at once."""
    receiver.reply(Reply(endless=True))
    result = await post(receiver.url, timeout=30.0)
    assert result.delivered, result.error
    request = receiver.received[-1]
    await wait_until(lambda: request.disconnected)
    assert not request.finished


async def test_the_deadline_bounds_the_whole_attempt(receiver: WebhookReceiver) -> None:
    """A byte every 0.1 s keeps every single read within any per-read timeout; the attempt's
    deadline still ends it. So does an answer that never starts."""
    receiver.reply(Reply(drip=0.1), Reply(delay=60))
    for _ in range(2):
        result = await post(receiver.url, timeout=0.5)
        assert (result.status, result.delivered, result.refused) == (None, False, False)
        assert result.error == "timed out after 0.5 s"


async def test_network_failures_are_results_without_the_url() -> None:
    closed = free_port()
    result = await post(f"http://127.0.0.1:{closed}/hook?token=s3cr3t-t0ken")
    assert (result.status, result.delivered, result.refused) == (None, False, False)
    assert result.error is not None
    assert result.error.startswith("could not connect")
    assert "s3cr3t" not in result.error


async def test_a_bad_event_id_is_a_programming_error(receiver: WebhookReceiver) -> None:
    with pytest.raises(ValueError, match="event_id"):
        await post(receiver.url, event_id="evt.1")  # a '.' would blur what is signed


def test_the_receiver_answers_as_scripted_and_records_in_order(receiver: WebhookReceiver) -> None:
    """The receiver itself (tests of triggers use it too): scripted replies in order, then the
    default; every request recorded, waited for from a sync test."""
    before = len(receiver.received)
    receiver.reply(Reply(status=500), Reply(status=202, body=b"ok"))
    statuses = [
        httpx.post(receiver.url_for(f"/r{n}"), json={"n": n}, timeout=10).status_code
        for n in range(3)
    ]
    assert statuses == [500, 202, 200]
    got = receiver.wait(before + 3)[before:]
    assert [(r.path, r.json()) for r in got] == [(f"/r{n}", {"n": n}) for n in range(3)]
    assert receiver.events()[-1] == {"n": 2}
