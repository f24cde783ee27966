"""Fetching a video by URL into the media store, safely (no SSRF), with size and time limits.

For the URL and for every redirect target (followed here, at most
`UrlPolicy.max_redirects`):

1. the scheme must be http or https and the URL absolute;
2. the host is resolved once: `resolver_overrides` (like /etc/hosts), an IP
   literal, or DNS (`getaddrinfo`);
3. unless the host (or host:port) is in `allow_hosts`, every address it
   resolves to must be public: loopback, private, link-local (cloud metadata
   169.254.169.254), CGNAT, multicast, reserved, unspecified and IPv6 forms
   embedding such IPv4 addresses are refused (`address_problem`) — 400
   `url-forbidden`, before any connection is made;
4. the connection goes to exactly the address that was checked (a pinned
   httpcore network backend: no second DNS lookup, so no DNS rebinding); TLS
   still verifies the certificate against the host name. Proxy variables
   (HTTP_PROXY, ...) are ignored: a proxy would resolve names itself.

Network and HTTP failures are `UrlFetchFailed` (400 `url-fetch-failed`); the
size limit is enforced while streaming (`PayloadTooLarge`, 413); the whole
download, redirects included, must finish within `timeout_s`. Each failed fetch is counted once, by
reason (`reelserve_fetch_failures_total`: dns, timeout, network, http-status, redirect, forbidden, too-large).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import socket
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from serve_app.config import SecuritySettings
from serve_app.errors import PayloadTooLarge, ReelserveError, UrlFetchFailed, UrlForbidden
from serve_app.observability.metrics import record_fetch_failure

logger = logging.getLogger(__name__)

__all__ = ["ALLOWED_SCHEMES", "UrlPolicy", "address_problem", "check_url", "fetch_url", "resolve_checked"]

ALLOWED_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_METADATA = ipaddress.ip_address("169.254.169.254")
_HTTPCORE_ERRORS = (
    httpcore.NetworkError,
    httpcore.TimeoutException,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    ssl.SSLError,
)


@dataclass(frozen=True)
class UrlPolicy:
    """Where URL fetches may go. The default allows public addresses only, resolved by DNS."""

    allow_hosts: frozenset[str] = frozenset()
    resolver_overrides: Mapping[str, str] = field(default_factory=dict)
    max_redirects: int = 5

    @classmethod
    def from_settings(cls, security: SecuritySettings) -> UrlPolicy:
        return cls(
            allow_hosts=frozenset(security.url_allow_hosts),
            resolver_overrides=dict(security.url_resolver_overrides),
            max_redirects=security.url_max_redirects,
        )

    def allows_private(self, host: str, port: int) -> bool:
        return host in self.allow_hosts or f"{host}:{port}" in self.allow_hosts


def address_problem(ip: IPAddress) -> str | None:
    """Why the service must not connect to `ip`, or None for a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            inner = address_problem(embedded)
            if inner:
                return f"{inner} (embedded in IPv6)"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip == _METADATA:
        return "the cloud metadata address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "a shared (CGNAT) address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "a site-local address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "a non-global address"
    return None


@dataclass(frozen=True)
class _Target:
    url: str
    host: str  # lower-case ASCII, no brackets: as httpcore names it to the network backend
    port: int
    ip: str


def check_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an absolute http(s) URL, or `UrlForbidden`."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlForbidden(f"not a valid URL ({exc}): {url[:200]!r}") from None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES or not parts.hostname:
        raise UrlForbidden(f"only absolute http(s) URLs are accepted, got {url[:200]!r}")
    host = parts.hostname.rstrip(".")
    if not host.isascii():
        raise UrlForbidden(f"write the host name of {url[:200]!r} in its ASCII (punycode) form")
    return scheme, host, port or DEFAULT_PORTS[scheme]


async def resolve_checked(url: str, policy: UrlPolicy) -> _Target:
    """Check the URL, resolve its host once and check every address (unless allowlisted)."""
    _, host, port = check_url(url)
    addresses = await _resolve(host, port, policy)
    if not policy.allows_private(host, port):
        for ip in addresses:
            problem = address_problem(ip)
            if problem:
                logger.warning("refused URL %s: %s resolves to %s (%s)", url[:200], host, ip, problem)
                raise UrlForbidden(f"{host} resolves to {problem}; only public addresses may be fetched")
    return _Target(url=url, host=host, port=port, ip=str(addresses[0]))


async def _resolve(host: str, port: int, policy: UrlPolicy) -> list[IPAddress]:
    if host in policy.resolver_overrides:
        return [ipaddress.ip_address(policy.resolver_overrides[host])]
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise _failed("dns", f"cannot resolve host {host!r}: {exc}") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))
    if not addresses:
        raise _failed("dns", f"host {host!r} has no address")
    return addresses


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses checked by `resolve_checked`; never resolves names itself."""

    def __init__(self) -> None:
        self.pins: dict[tuple[str, int], str] = {}
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        ip = self.pins.get((host.lower(), port))
        if ip is None:
            raise httpcore.ConnectError(f"refusing to connect to unchecked address {host}:{port}")
        return await self._inner.connect_tcp(
            ip, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not used for URL fetches")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()  # certifi's CA bundle, hostname verification on


async def fetch_url(url: str, dest: Path, *, max_bytes: int, timeout_s: float, policy: UrlPolicy | None = None) -> int:
    """Download `url` to `dest`; returns the byte count. Removes `dest` on failure."""
    policy = policy or UrlPolicy()
    try:
        async with asyncio.timeout(timeout_s):
            return await _download(url, dest, max_bytes, timeout_s, policy)
    except TimeoutError:
        dest.unlink(missing_ok=True)
        record_fetch_failure("timeout")
        raise UrlFetchFailed(f"fetching {url[:200]} took longer than {timeout_s:g}s") from None
    except _HTTPCORE_ERRORS as exc:
        dest.unlink(missing_ok=True)
        record_fetch_failure("network")
        raise UrlFetchFailed(f"could not fetch {url[:200]}: {type(exc).__name__}: {exc}") from None
    except BaseException as exc:
        dest.unlink(missing_ok=True)
        if isinstance(exc, ReelserveError):  # not a cancellation: the fetch failed, for a reason of its own
            record_fetch_failure(_reason(exc))
        raise


def _failed(reason: str, detail: str) -> UrlFetchFailed:
    exc = UrlFetchFailed(detail)
    exc.reason = reason
    return exc


def _reason(exc: ReelserveError) -> str:
    """The `reelserve_fetch_failures_total` reason of a failed fetch."""
    if isinstance(exc, UrlFetchFailed):
        return exc.reason
    return {UrlForbidden.type: "forbidden", PayloadTooLarge.type: "too-large"}.get(exc.type, exc.type)


async def _download(url: str, dest: Path, max_bytes: int, timeout_s: float, policy: UrlPolicy) -> int:
    backend = _PinnedBackend()
    timeouts = {"connect": timeout_s, "read": timeout_s, "write": timeout_s, "pool": timeout_s}
    headers = [(b"User-Agent", b"reelserve"), (b"Accept-Encoding", b"identity")]
    current = url
    async with httpcore.AsyncConnectionPool(ssl_context=_ssl_context(), network_backend=backend) as pool:
        for _ in range(policy.max_redirects + 1):
            target = await resolve_checked(current, policy)
            backend.pins[(target.host, target.port)] = target.ip
            async with pool.stream("GET", current, headers=headers, extensions={"timeout": timeouts}) as response:
                if response.status in REDIRECT_STATUSES:
                    location = _header(response.headers, b"location")
                    if not location:
                        raise _failed("redirect", f"{current[:200]} redirected without a Location header")
                    current = urljoin(current, location)
                    continue
                if response.status != 200:
                    raise _failed("http-status", f"{current[:200]} answered HTTP {response.status}")
                return await _save(response, current, dest, max_bytes)
    raise _failed("redirect", f"{url[:200]} redirected more than {policy.max_redirects} times")


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


async def _save(response: httpcore.Response, url: str, dest: Path, max_bytes: int) -> int:
    declared = _header(response.headers, b"content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"{url[:200]} is {declared} bytes; the limit is {max_bytes}")
    size = 0
    with dest.open("wb") as out:
        async for block in response.aiter_stream():
            size += len(block)
            if size > max_bytes:
                raise PayloadTooLarge(f"{url[:200]} is larger than the limit of {max_bytes} bytes")
            out.write(block)
    return size
