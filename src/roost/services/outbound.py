"""Outgoing HTTP calls that tenants choose the destination of (triggers' URL targets).

MINIMAL STAND-IN written by the triggers work so that its URL targets run; the webhooks work
owns this module and its interface (`AllowList`, `PostResult`, `post_event`, `retry_delay`),
and replaces this file at merge. What it does: syntax and scheme checks, a DNS resolution
whose every address must be allowed (by `ipaddress` categories, or listed in
`ROOST_WEBHOOK_ALLOW`), a POST to the checked address (the host name kept for the Host
header and TLS), no redirects, the answer's body capped, and Standard Webhooks signing.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import ipaddress
import random
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import httpx

from roost.clock import Clock
from roost.errors import ValidationError

_MAX_ANSWER = 64 * 1024
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class OutboundRefused(ValidationError):
    """A destination a tenant may not reach (a 400 naming the field `url`)."""

    default_code = "outbound_refused"


def _refused(message: str) -> OutboundRefused:
    return OutboundRefused(message, details={"field": "url"})


@dataclass(frozen=True)
class AllowList:
    """Which outgoing destinations tenants may reach; from settings `webhook_allow`
    (env ROOST_WEBHOOK_ALLOW: comma-separated CIDRs and host names; empty by default =
    public addresses only)."""

    networks: tuple[_Network, ...] = ()
    hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, text: str) -> AllowList:
        networks: list[_Network] = []
        hosts: set[str] = set()
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                hosts.add(part.lower().rstrip("."))
        return cls(tuple(networks), frozenset(hosts))

    def check_url(self, url: str) -> None:
        """Syntax and scheme (http or https); raises OutboundRefused. No DNS."""
        if len(url) > 2048 or any(ord(c) < 33 or ord(c) == 127 for c in url):
            raise _refused("the URL must be at most 2048 characters, without spaces or controls")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise _refused(f"not a URL: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _refused("the URL must be http:// or https:// with a host")
        if parts.username is not None or parts.password is not None:
            raise _refused("the URL must not carry credentials")
        if port == 0:
            raise _refused("the URL's port must be 1 to 65535")
        literal = _literal(parts.hostname)
        if literal is not None and not self._allows_address(literal):
            raise _refused(f"{parts.hostname} is not a public address (ROOST_WEBHOOK_ALLOW)")

    async def resolve(self, url: str) -> list[str]:
        """The URL's host resolved; OutboundRefused if ANY address is refused."""
        self.check_url(url)
        host = urlsplit(url).hostname or ""
        literal = _literal(host)
        if literal is not None:
            return [str(literal)]
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, None, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise _refused(f"{host} does not resolve: {exc}") from None
        addresses = sorted({str(info[4][0]) for info in infos})
        listed = host.lower().rstrip(".") in self.hosts
        for text in addresses:
            if not listed and not self._allows_address(ipaddress.ip_address(text)):
                raise _refused(f"{host} resolves to {text}, not a public address")
        return addresses

    def _allows_address(self, address: _Address) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in self.networks):
            return True
        return address.is_global and not address.is_multicast


def _literal(host: str) -> _Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


@dataclass(frozen=True)
class PostResult:
    status: int | None  # HTTP status, None when no answer (timeout, refused, DNS)
    error: str | None  # short reason, no secrets
    duration_ms: float

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks: `v1,<base64 HMAC-SHA256 of f"{id}.{ts}.{body}">`."""
    key = secret.removeprefix("whsec_")
    try:
        raw = base64.b64decode(key, validate=True)
    except ValueError:
        raw = secret.encode()
    message = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(raw, message, hashlib.sha256).digest()).decode()


async def post_event(
    url: str,
    *,
    body: bytes,
    event_id: str,
    secret: str,
    allow: AllowList,
    timeout: float,  # noqa: ASYNC109 - the interface's: one attempt's HTTP timeout
    clock: Clock,
    headers: Mapping[str, str] | None = None,
) -> PostResult:
    """ONE signed POST attempt to the checked address; never raises for network errors."""
    started = time.perf_counter()

    def result(status: int | None, error: str | None) -> PostResult:
        return PostResult(status, error, (time.perf_counter() - started) * 1000)

    try:
        addresses = await allow.resolve(url)
    except OutboundRefused as exc:
        return result(None, exc.message)
    parts = urlsplit(url)
    host = parts.hostname or ""
    address = addresses[0]
    pinned = f"[{address}]" if ":" in address else address
    netloc = pinned if parts.port is None else f"{pinned}:{parts.port}"
    timestamp = int(clock.time())
    sent = {
        **(headers or {}),
        "content-type": "application/json",
        "host": parts.netloc,
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, event_id, timestamp, body),
    }
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    try:
        async with httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, verify=_tls()
        ) as client:
            request = client.build_request(
                "POST",
                urlunsplit(parts._replace(netloc=netloc)),
                content=body,
                headers=sent,
                extensions=extensions,
            )
            response = await client.send(request, stream=True)
            try:
                read = 0
                async for chunk in response.aiter_bytes():
                    read += len(chunk)
                    if read > _MAX_ANSWER:
                        break
            finally:
                await response.aclose()
    except httpx.TimeoutException:
        return result(None, f"no answer within {timeout:g} s")
    except httpx.HTTPError as exc:
        return result(None, f"could not connect: {type(exc).__name__}")
    error = None if 200 <= response.status_code < 300 else f"answered {response.status_code}"
    return result(response.status_code, error)


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every call (making one reads the CA bundle: milliseconds)."""
    return ssl.create_default_context()


def retry_delay(attempt: int, *, base: float = 1.0, cap: float = 600.0) -> float:
    """Seconds to wait before retry number `attempt` (1-based): exponential, full jitter."""
    ceiling = min(cap, base * 2 ** min(max(attempt - 1, 0), 60))
    return random.uniform(0, ceiling)
