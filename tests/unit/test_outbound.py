"""`services/outbound.py` without the network: which URLs `AllowList` refuses by their text,
how `ROOST_WEBHOOK_ALLOW` is read, and the bounds of `retry_delay`."""

from __future__ import annotations

import ipaddress
import random

import pytest

from roost.errors import ConfigurationError, ValidationError
from roost.services.outbound import AllowList, OutboundRefused, PostResult, retry_delay
from roost.settings import load_settings

NOBODY = AllowList()  # the default: public addresses only


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/hook", "loopback"),
        ("http://127.0.0.1./hook", "loopback"),
        ("http://127.255.255.254:8080/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://localhost:8787/", "loopback name"),
        ("http://api.LOCALHOST/", "loopback name"),
        ("http://0.0.0.0:8787/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://10.1.2.3/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),  # cloud metadata
        ("http://[fe80::1]/", "link-local"),
        ("http://[fd00:ec2::254]/", "private"),  # AWS' IPv6 metadata, unique-local
        ("http://[fc00::1]/", "private"),
        ("http://100.64.0.1/", "CGNAT"),
        ("http://224.0.0.1/", "multicast"),
        ("http://[ff0e::1]/", "multicast"),
        ("http://240.0.0.1/", "private|reserved"),
        ("http://255.255.255.255/", "private|reserved"),
        ("http://198.18.0.1/", "private"),  # benchmarking
        ("http://[::ffff:127.0.0.1]/", "IPv4-mapped"),
        ("http://[::ffff:8.8.8.8]/", "IPv4-mapped"),  # whatever it maps
        ("http://[::127.0.0.1]/", "reserved"),  # IPv4-compatible
        ("http://[64:ff9b::7f00:1]/", "NAT64"),
        ("http://[2002:7f00:1::]/", "6to4"),  # 6to4 of 127.0.0.1
        ("http://[fe80::1%25eth0]/", "zone id"),
        # numbers that resolvers read as 127.0.0.1
        ("http://2130706433/", "ambiguous numeric"),
        ("http://0x7f.1/", "ambiguous numeric"),
        ("http://0x7f000001/", "ambiguous numeric"),
        ("http://127.1/", "ambiguous numeric"),
        ("http://017700000001/", "ambiguous numeric"),
        ("http://127.0.0.01/", "ambiguous numeric|not a valid URL"),
        ("http://1.2.3.4.5/", "ambiguous numeric"),
        ("http://example.com.0x7f/", "ambiguous numeric"),
        # confusing syntax
        ("http://a@127.0.0.1/", "user info"),
        ("http://example.com@127.0.0.1/", "user info"),
        ("http://user:pass@example.com/", "user info"),
        ("http://example.com\\@127.0.0.1/", "backslash"),
        ("http://exa mple.com/", "spaces"),
        ("http://example.com/\r\nHost: x", "control"),
        ("http://%31%32%37.0.0.1/", "host name"),
        ("http://127.0.0.1:99999/", "port|not a valid URL"),
        ("http://example.com:0/", "port"),
        ("ftp://example.com/", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("gopher://127.0.0.1:6379/_FLUSHALL", "http or https"),
        ("//example.com/", "http or https"),
        ("http:///path", "name a host"),
        ("not a url", "spaces"),
        ("", "URL of at most"),
        ("https://example.com/" + "a" * 2100, "URL of at most"),
        ("http://-bad-.example.com/", "host name"),
    ],
)
def test_check_url_refuses(url: str, reason: str) -> None:
    with pytest.raises(OutboundRefused, match=reason) as caught:
        NOBODY.check_url(url)
    refusal = caught.value
    assert isinstance(refusal, ValidationError)
    assert refusal.status_code == 400
    assert refusal.details == {"field": "url"}


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hooks/roost?token=abc",
        "http://EXAMPLE.com.:8080/x#fragment",
        "https://bücher.example/hook",  # IDNA
        "http://93.184.216.34/",
        "http://8.8.8.8:53/",
        "https://[2606:4700:4700::1111]/",
        "https://hooks_1.example.com/",
    ],
)
def test_check_url_accepts_public_destinations(url: str) -> None:
    NOBODY.check_url(url)


def test_the_allow_list_permits_its_networks_and_hosts_and_nothing_more() -> None:
    allow = AllowList.parse(" 10.0.0.0/8, 127.0.0.1 ,[fd00::1], Hooks.Internal., localhost,")
    assert allow.hosts == frozenset({"hooks.internal", "localhost"})
    assert ipaddress.ip_network("fd00::1/128") in allow.networks
    for url in (
        "http://10.9.8.7:8080/",
        "http://127.0.0.1:9/",
        "http://[fd00::1]/",
        "http://localhost:8787/",
        "http://hooks.internal/",
    ):
        allow.check_url(url)
    for url in (
        "http://127.0.0.2/",  # a /32, not the loopback network
        "http://192.168.0.1/",
        "http://[::ffff:127.0.0.1]/",  # not the IPv4 entry in another form
        "http://2130706433/",  # nor in a numeric disguise
        "http://api.localhost/",  # exact names only
    ):
        with pytest.raises(OutboundRefused):
            allow.check_url(url)


def test_a_refusal_names_the_field_it_is_given() -> None:
    refusal = OutboundRefused("is refused", field="target.url")
    assert refusal.details == {"field": "target.url"}
    assert refusal.code == "destination_refused"
    assert refusal.message == "target.url: is refused"


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "10.0.0.0/8/9", "a..b", "-x.com", "1.2.3", "::g"])
def test_a_bad_allow_list_entry_is_named(entry: str) -> None:
    with pytest.raises(ValueError, match="neither a network"):
        AllowList.parse(f"10.0.0.0/8,{entry}")


def test_the_setting_is_checked_when_the_server_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROOST_WEBHOOK_ALLOW", raising=False)
    assert load_settings().webhook_allow == ""
    monkeypatch.setenv("ROOST_WEBHOOK_ALLOW", "10.0.0.0/8,hooks.internal")
    assert AllowList.parse(load_settings().webhook_allow).hosts == {"hooks.internal"}
    monkeypatch.setenv("ROOST_WEBHOOK_ALLOW", "10.0.0.0/8,bad..name")
    with pytest.raises(ConfigurationError, match=r"ROOST_WEBHOOK_ALLOW.*bad\.\.name"):
        load_settings()


def test_delivered_means_2xx() -> None:
    assert PostResult(204, None, 1.0).delivered
    assert not PostResult(302, "HTTP 302", 1.0).delivered
    assert not PostResult(None, "timed out", 1.0).delivered


def test_retry_delay_is_full_jitter_under_an_exponential_ceiling() -> None:
    random.seed(14)
    for attempt in range(1, 30):
        ceiling = min(600.0, 2.0 ** (attempt - 1))
        delays = [retry_delay(attempt) for _ in range(200)]
        assert all(0.0 <= delay <= ceiling for delay in delays)
        # full jitter: spread over the whole range, not bunched at the ceiling
        assert min(delays) < ceiling * 0.1
        assert max(delays) > ceiling * 0.9
    assert all(retry_delay(3, base=0.5, cap=1.5) <= 1.5 for _ in range(100))
    assert all(retry_delay(2, base=0.25) <= 0.5 for _ in range(100))


def test_retry_delay_stays_capped_for_huge_attempts_and_refuses_zero() -> None:
    assert 0.0 <= retry_delay(10**9) <= 600.0
    assert 0.0 <= retry_delay(1025, cap=30.0) <= 30.0
    with pytest.raises(ValueError, match="from 1"):
        retry_delay(0)
    with pytest.raises(ValueError, match="positive"):
        retry_delay(1, base=0.0)
    with pytest.raises(ValueError, match="negative"):
        retry_delay(1, cap=-1.0)
