"""Requests the server sends out to URLs a tenant chose (webhook targets of triggers).

A tenant must not reach the server's own network through them (SSRF). Every destination
passes `AllowList`: the URL's syntax first (`check_url`, no DNS: http or https, no user
info, no ambiguous numeric host such as `2130706433`, `0x7f.1` or `127.1`, which resolvers
read as 127.0.0.1), then every address its host resolves to (`resolve`): loopback, private,
link-local (169.254.169.254, the cloud metadata service), shared CGNAT, unique-local,
multicast, reserved, unspecified and IPv4-mapped, -compatible or 6to4-embedded private
addresses are refused unless `ROOST_WEBHOOK_ALLOW` lists the address's network or the host's
exact name.

`post_event` then connects to the very addresses it checked (a network backend pinned to
them, while the request keeps the URL's Host header and TLS server name), so a DNS answer
that changes between the check and the connection (DNS rebinding) cannot send it elsewhere.
It follows no redirect, reads at most 64 KiB of the answer, and bounds the whole attempt
(DNS, connection, TLS, request and answer) by one deadline.

Other services that fetch URLs an administrator or a tenant gives may use `AllowList` too.
"""

from __future__ import annotations

import functools
import ipaddress
import random
import re
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Final

import anyio
import msgspec

from roost._version import __version__
from roost.clock import Clock
from roost.errors import ValidationError
from roost.webhooks import sign

if TYPE_CHECKING:  # httpx and httpcore load on the first request out (~60 ms of a start)
    import httpcore
    import httpx

__all__ = [
    "AllowList",
    "OutboundRefused",
    "PostResult",
    "check_headers",
    "post_event",
    "retry_delay",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_CHARS: Final = 2048
MAX_ANSWER_BYTES: Final = 64 * 1024  # read of an answer's body; the rest is never read
_CGNAT: Final = ipaddress.ip_network("100.64.0.0/10")
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")
_LABEL: Final = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_NUMBER: Final = re.compile(r"(0x[0-9a-f]*|[0-9]+)")  # a part inet_aton reads as a number
_OCTET: Final = r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_DOTTED_QUAD: Final = re.compile(rf"{_OCTET}(\.{_OCTET}){{3}}")
_EVENT_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,128}")  # never a '.': it delimits what is signed
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")  # RFC 9110 token
_HEADER_VALUE: Final = re.compile(r"[\x20-\x7e\t]{0,4096}")
MAX_HEADERS: Final = 32
_OURS: Final = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "content-type"}
    | {"webhook-id", "webhook-timestamp", "webhook-signature"}
)


class OutboundRefused(ValidationError):
    """The server will not send a request to this URL (400 naming the field, `url` unless
    told): its syntax, or an address it resolves to, is not allowed."""

    default_code = "destination_refused"

    def __init__(self, message: str, *, field: str = "url", code: str | None = None) -> None:
        super().__init__(f"{field}: {message}", code=code, details={"field": field})


def _refusal(address: IPAddress) -> str | None:
    """Why `address` is no destination for a tenant's request, or None if it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return "an IPv4-mapped IPv6 address"
        if address in _NAT64:
            return "a NAT64 address"
        if address.sixtofour is not None and _refusal(address.sixtofour):
            return "a 6to4 address of a non-public IPv4 address"
    checks = (
        (address.is_multicast, "a multicast address"),
        (address.is_unspecified, "the unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address in _CGNAT, "a shared (CGNAT) address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a public address"),
    )
    return next((why for refused, why in checks if refused), None)


class _Target(msgspec.Struct, frozen=True):
    host: str  # lower case, without a trailing dot; IDNA hosts in their ASCII form
    port: int
    address: IPAddress | None  # when the host is an IP literal


class AllowList(msgspec.Struct, frozen=True):
    """Which outgoing destinations tenants may reach; from settings `webhook_allow`
    (env ROOST_WEBHOOK_ALLOW: comma-separated CIDRs and host names, e.g.
    "10.0.0.0/8,hooks.internal"; empty by default = public addresses only; loopback,
    private, link-local, multicast, reserved, unspecified, IPv4-mapped private, etc. refused
    unless listed). A listed network permits its addresses (a single address is a /32 or
    /128); a listed host name permits whatever that exact name resolves to."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = msgspec.field(default_factory=frozenset)

    @classmethod
    def parse(cls, text: str) -> AllowList:
        """The list `text` names; raises ValueError naming an entry that is neither a
        network, an address nor a host name."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for raw in text.split(","):
            entry = raw.strip().lower().removeprefix("[").removesuffix("]").rstrip(".")
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            if "/" in entry or ":" in entry or _numeric(entry) or not _hostname(entry):
                raise ValueError(
                    f"{raw.strip()!r} is neither a network (CIDR), nor an address, nor a host name"
                )
            hosts.add(entry)
        return cls(tuple(networks), frozenset(hosts))

    def check_url(self, url: str) -> None:
        """Refuse (OutboundRefused) a URL that is not http(s), is malformed, carries user
        info, names an ambiguous numeric host, or names a refused address literally. No DNS:
        `resolve` checks where a host name leads."""
        self._target(url)

    async def resolve(self, url: str) -> list[str]:
        """The addresses to connect to for `url`, after `check_url`: every address its host
        resolves to must be allowed, else OutboundRefused (code `host_unresolved` when the
        host does not resolve). The refusal does not say which address a name resolved to:
        a tenant learns nothing of the server's internal DNS."""
        target = self._target(url)
        if target.address is not None:
            return [str(target.address)]
        try:
            # the system's resolver in a thread, whatever the event loop (uvloop has its own):
            # the host is already ASCII (httpx applied IDNA)
            found = await anyio.to_thread.run_sync(
                socket.getaddrinfo, target.host, target.port, 0, socket.SOCK_STREAM
            )
        except (socket.gaierror, UnicodeError):
            raise OutboundRefused("the host does not resolve", code="host_unresolved") from None
        addresses = list(dict.fromkeys(str(entry[4][0]) for entry in found))
        if not addresses:
            raise OutboundRefused("the host does not resolve", code="host_unresolved")
        if target.host in self.hosts:
            return addresses
        for text in addresses:
            why = _refusal(ipaddress.ip_address(text))
            if why is not None and not self._permits(ipaddress.ip_address(text)):
                raise OutboundRefused(
                    f"{target.host} resolves to {why}, which this server does not call "
                    "(ROOST_WEBHOOK_ALLOW does not list it)"
                )
        return addresses

    def _permits(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)

    def _target(self, url: str) -> _Target:
        if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS:
            raise OutboundRefused(f"must be a URL of at most {MAX_URL_CHARS} characters")
        if any(char.isspace() or ord(char) < 0x20 or char in "\\\x7f" for char in url):
            raise OutboundRefused("must not contain spaces, control characters or backslashes")
        import httpx

        try:
            parsed = httpx.URL(url)
            port = parsed.port
        except (httpx.InvalidURL, ValueError):
            raise OutboundRefused("is not a valid URL") from None
        if parsed.scheme not in ("http", "https"):
            raise OutboundRefused("must be an http or https URL")
        if parsed.userinfo:
            raise OutboundRefused("must not carry user info (user:password@); send headers")
        host = parsed.raw_host.decode("ascii").lower().rstrip(".")
        port = port if port is not None else (443 if parsed.scheme == "https" else 80)
        if not host or not 0 < port < 65536:
            raise OutboundRefused("must name a host (and a port from 1 to 65535)")
        address = _literal(host)
        loopback_name = host == "localhost" or host.endswith(".localhost")  # RFC 6761
        if address is None and loopback_name and host not in self.hosts:
            raise OutboundRefused(f"{host} is a loopback name, which this server does not call")
        if address is not None:
            why = _refusal(address)
            if why is not None and not self._permits(address):
                raise OutboundRefused(
                    f"{address} is {why}, which this server does not call "
                    "(ROOST_WEBHOOK_ALLOW does not list it)"
                )
        return _Target(host, port, address)


def _numeric(host: str) -> bool:
    """Whether resolvers would read `host` as an IPv4 address (its last part is a number, as
    the WHATWG URL standard decides)."""
    return bool(_NUMBER.fullmatch(host.rsplit(".", 1)[-1]))


def _hostname(host: str) -> bool:
    return len(host) <= 253 and all(_LABEL.fullmatch(label) for label in host.split("."))


def _literal(host: str) -> IPAddress | None:
    """The address a host names literally; OutboundRefused for a host that is neither a
    plain host name nor an address in its one canonical form."""
    if "%" in host:
        raise OutboundRefused("is not a valid host name (no percent-encoding or zone id)")
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise OutboundRefused("is not a valid IPv6 address") from None
    if _numeric(host):
        if not _DOTTED_QUAD.fullmatch(host):
            raise OutboundRefused(
                f"{host} is an ambiguous numeric host; write an IPv4 address as four decimal "
                "numbers"
            )
        return ipaddress.IPv4Address(host)
    if not _hostname(host):
        raise OutboundRefused("is not a valid host name")
    return None


def check_headers(headers: Mapping[str, str] | None, *, field: str = "headers") -> None:
    """Refuse (OutboundRefused naming `field`) headers a webhook may not carry: more than 32,
    a name that is not an HTTP token, a value that is not printable ASCII (no CR/LF: no
    header injection) or longer than 4096 characters, or a name the signature scheme or the
    HTTP framing sets (webhook-*, content-type, content-length, host, ...). The refusal
    names the header, never its value (it may be a credential)."""
    if not headers:
        return
    if len(headers) > MAX_HEADERS:
        raise OutboundRefused(f"at most {MAX_HEADERS} headers", field=field)
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise OutboundRefused("a header name must be an HTTP token", field=field)
        if name.lower() in _OURS:
            raise OutboundRefused(f"{name} is set by the server", field=field)
        if not isinstance(value, str) or not _HEADER_VALUE.fullmatch(value):
            raise OutboundRefused(
                f"the value of {name} must be printable ASCII, at most 4096 characters",
                field=field,
            )


# -- one attempt ------------------------------------------------------------------------------


class PostResult(msgspec.Struct, frozen=True):
    """What one attempt came to."""

    status: int | None
    """HTTP status, None when no answer (timeout, refused, DNS)"""
    error: str | None
    """short reason, no secrets (and never the URL, which may carry a token)"""
    duration_ms: float
    refused: bool = False
    """the destination or the headers were refused (OutboundRefused): retrying the same
    request is pointless (until ROOST_WEBHOOK_ALLOW changes)"""
    retry_after: float | None = None
    """seconds the receiver asked to wait (Retry-After, in seconds form), if it did"""

    @property
    def delivered(self) -> bool:
        """The receiver answered 2xx."""
        return self.status is not None and 200 <= self.status < 300


@functools.cache
def _pinned_backend() -> Callable[[list[str]], httpcore.AsyncNetworkBackend]:
    """The network backend class below, made on first use (httpcore loads then)."""
    import httpcore

    class PinnedBackend(httpcore.AsyncNetworkBackend):
        """httpcore's network, connecting to the addresses that were checked whatever host the
        request names: TLS still verifies, and the Host header still says, the URL's host."""

        def __init__(self, addresses: list[str]) -> None:
            self._addresses = addresses
            self._network = httpcore.AnyIOBackend()

        async def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
            local_address: str | None = None,
            socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
        ) -> httpcore.AsyncNetworkStream:
            failure: Exception = httpcore.ConnectError("no address to connect to")
            for address in self._addresses:
                try:
                    return await self._network.connect_tcp(
                        address, port, timeout, local_address, socket_options
                    )
                except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                    failure = exc
            raise failure

        async def connect_unix_socket(
            self,
            path: str,
            timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
            socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
        ) -> httpcore.AsyncNetworkStream:
            raise httpcore.ConnectError("webhooks do not use Unix sockets")

        async def sleep(self, seconds: float) -> None:
            await self._network.sleep(seconds)

    return PinnedBackend


@functools.cache
def _default_tls() -> ssl.SSLContext:
    """One verifying context for every attempt (making one reads the CA bundle, ~ms)."""
    import httpx

    return httpx.create_ssl_context()


def pinned_client(
    addresses: list[str], *, timeout: float, tls: ssl.SSLContext | None = None
) -> httpx.AsyncClient:
    """An httpx client that connects only to `addresses` (from `AllowList.resolve`), whatever
    host a request names, follows no redirect and takes no proxy from the environment."""
    import httpx

    from roost.client._transport import AsyncBackendTransport

    tls = tls or _default_tls()
    backend = _pinned_backend()(addresses)
    transport = AsyncBackendTransport(backend, ssl_context=tls, max_connections=1)
    return httpx.AsyncClient(
        transport=transport,
        follow_redirects=False,
        trust_env=False,  # no proxy from the environment: it would connect where it likes
        timeout=httpx.Timeout(timeout),
    )


def _request_headers(
    extra: Mapping[str, str] | None, event_id: str, timestamp: int, signature: str
) -> dict[str, str]:
    headers = {name.lower(): value for name, value in (extra or {}).items()}
    headers.setdefault("user-agent", f"Roost-Webhooks/{__version__}")
    headers["content-type"] = "application/json"
    headers["webhook-id"] = event_id
    headers["webhook-timestamp"] = str(timestamp)
    headers["webhook-signature"] = signature
    return headers


def _reason(exc: BaseException, url: str) -> str:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    kinds: dict[type[BaseException], str] = {
        httpx.ConnectError: "could not connect",
        httpx.RemoteProtocolError: "the receiver broke HTTP",
    }
    if isinstance(exc, httpx.LocalProtocolError):  # its message may quote a header's value
        return "could not send the request"
    kind = kinds.get(type(exc), type(exc).__name__)
    detail = "".join(char if char.isprintable() else " " for char in str(exc)).replace(url, "<url>")
    return f"{kind}: {detail}"[:200] if detail else kind


def _retry_after(value: str | None) -> float | None:
    if value is None or not value.strip().isdigit():
        return None
    return min(float(value.strip()), 86400.0)


async def _send(
    url: str,
    addresses: list[str],
    headers: dict[str, str],
    body: bytes,
    tls: ssl.SSLContext,
    seconds: float,
) -> tuple[int, float | None]:
    async with (
        pinned_client(addresses, timeout=seconds, tls=tls) as http,
        http.stream("POST", url, content=body, headers=headers) as answer,
    ):
        read = 0
        async for chunk in answer.aiter_raw():  # raw: a compressed bomb stays compressed
            read += len(chunk)
            if read >= MAX_ANSWER_BYTES:
                break
        return answer.status_code, _retry_after(answer.headers.get("retry-after"))


async def post_event(
    url: str,
    *,
    body: bytes,
    event_id: str,
    secret: str,
    allow: AllowList,
    timeout: float,  # noqa: ASYNC109 - the shared interface's name; anyio.fail_after applies it
    clock: Clock,
    headers: Mapping[str, str] | None = None,
    tls: ssl.SSLContext | None = None,
) -> PostResult:
    """ONE attempt: resolve + check (connect to the checked address, so DNS rebinding
    can't swap it), POST `body` (JSON) signed per Standard Webhooks (headers webhook-id,
    webhook-timestamp, webhook-signature "v1,<base64 HMAC-SHA256 of f'{id}.{ts}.{body}'>"),
    no redirects followed, response body read capped. Never raises for network errors.

    `timeout` bounds the whole attempt. `headers` are added to the request (`check_headers`
    first: a refused one makes a refused result). `tls` verifies https receivers
    (default: the system's CAs). Raises only for the caller's own mistakes: an `event_id`
    not of 1-128 `[A-Za-z0-9_-]` (ValueError), an unusable secret (ConfigurationError)."""
    import httpx

    if not _EVENT_ID.fullmatch(event_id):
        raise ValueError("event_id must be 1-128 characters of [A-Za-z0-9_-]")
    started = clock.monotonic()
    timestamp = int(clock.time())
    status: int | None = None
    error: str | None = None
    refused = False
    retry_after: float | None = None
    try:
        with anyio.fail_after(timeout):
            check_headers(headers)
            signature = sign(secret, msg_id=event_id, timestamp=timestamp, body=body)
            signed = _request_headers(headers, event_id, timestamp, signature)
            addresses = await allow.resolve(url)
            context = tls or _default_tls()
            status, retry_after = await _send(url, addresses, signed, body, context, timeout)
    except OutboundRefused as exc:
        error, refused = exc.message, exc.code == OutboundRefused.default_code
    except TimeoutError:
        error = f"timed out after {timeout:g} s"
    except httpx.HTTPError as exc:
        error = _reason(exc, url)
    except OSError as exc:  # what the network raises below httpcore's own errors
        error = _reason(exc, url)
    if status is not None and not 200 <= status < 300:
        error = f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
    duration_ms = (clock.monotonic() - started) * 1000
    return PostResult(status, error, duration_ms, refused=refused, retry_after=retry_after)


def retry_delay(attempt: int, *, base: float = 1.0, cap: float = 600.0) -> float:
    """Seconds to wait before retry number `attempt` (1-based): exponential with full jitter,
    uniform in [0, min(cap, base * 2 ** (attempt - 1))] (AWS' "full jitter": retries of many
    failed deliveries spread out instead of arriving together)."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    if not (base > 0 and cap >= 0):
        raise ValueError("base must be positive and cap not negative")
    ceiling = cap if attempt > 64 else min(cap, base * 2.0 ** (attempt - 1))
    return random.uniform(0.0, ceiling)
