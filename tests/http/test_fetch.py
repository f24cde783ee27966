"""SSRF-safe URL fetching: address rules, allowlist, pinned connections, redirects re-checked.

Every test runs under the loopback guard (serve_app.devtools.netguard): a connection or DNS lookup
that could leave the machine fails the test, even if fetch's own checks were wrong.
Hosts are mapped with the injectable resolver; only loopback addresses are ever connected to.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import httpcore
import pytest

from serve_app.devtools.netguard import install_loopback_guard, uninstall_loopback_guard
from serve_app.errors import PayloadTooLarge, UrlFetchFailed, UrlForbidden
from serve_app.http.fetch import UrlPolicy, _PinnedBackend, address_problem, check_url, fetch_url, resolve_checked
from tests.media_server import serve_folder

REFUSED = {
    "127.0.0.1": "loopback",
    "127.255.0.9": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "172.31.255.254": "private",
    "192.168.1.1": "private",
    "169.254.169.254": "metadata",
    "169.254.1.1": "link-local",
    "0.0.0.0": "unspecified",
    "100.64.0.1": "CGNAT",
    "100.127.255.1": "CGNAT",
    "224.0.0.1": "multicast",
    "239.255.255.250": "multicast",
    "240.0.0.1": "reserved",
    "255.255.255.255": "",
    "192.0.2.10": "",
    "198.18.0.1": "",
    "::1": "loopback",
    "::": "unspecified",
    "fe80::1": "link-local",
    "fc00::1": "private",
    "fd12:3456::1": "private",
    "fec0::1": "site-local",
    "ff02::1": "multicast",
    "::ffff:127.0.0.1": "embedded in IPv6",
    "::ffff:10.0.0.1": "embedded in IPv6",
    "::ffff:169.254.169.254": "metadata",
    "2002:a00:1::1": "embedded in IPv6",  # 6to4 of 10.0.0.1
    "64:ff9b::a00:1": "",  # NAT64 (inside ::/8): refused whatever it embeds
    "2001:db8::1": "",
}
PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "172.32.0.1",
    "100.128.0.1",
    "2606:4700:4700::1111",
]


@pytest.mark.parametrize(("address", "reason"), REFUSED.items())
def test_refused_addresses(address: str, reason: str) -> None:
    problem = address_problem(ipaddress.ip_address(address))
    assert problem is not None and reason.lower() in problem.lower()


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/a.mp4",
        "file:///etc/passwd",
        "gopher://x/",
        "http:///nohost",
        "/relative.mp4",
        "http://exämple.com/",
    ],
)
def test_only_absolute_http_urls(url: str) -> None:
    with pytest.raises(UrlForbidden):
        check_url(url)


@pytest.fixture(autouse=True)
def no_egress() -> Iterator[list[str]]:
    blocked: list[str] = []
    install_loopback_guard(blocked.append)
    try:
        yield blocked
    finally:
        uninstall_loopback_guard()
    assert blocked == [], f"tried to leave loopback: {blocked}"


POLICY = UrlPolicy(
    allow_hosts=frozenset({"media.test"}),
    resolver_overrides={
        "media.test": "127.0.0.1",
        "loop.test": "127.0.0.1",  # loopback but not allowlisted
        "ten.test": "10.0.0.1",
        "metadata.test": "169.254.169.254",
        "mapped.test": "::ffff:192.168.0.1",
    },
    max_redirects=3,
)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://ten.test/a.mp4", "private"),
        ("http://metadata.test/latest/meta-data/", "metadata"),
        ("http://mapped.test/", "private"),
        ("http://loop.test:8080/", "loopback"),
        ("http://127.0.0.1/", "loopback"),
        ("http://[::1]:80/", "loopback"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://localhost/", "loopback"),  # resolved (no DNS for localhost), then refused
        ("http://2130706433/", "loopback"),  # 127.0.0.1 as a decimal number
        ("http://0x7f.1/", "loopback"),
    ],
)
def test_refused_before_connecting(url: str, message: str) -> None:
    with pytest.raises(UrlForbidden, match=message):
        asyncio.run(resolve_checked(url, POLICY))


def test_allowlist_by_host_or_host_port() -> None:
    target = asyncio.run(resolve_checked("http://Media.Test:8123/x.mp4", POLICY))
    assert (target.host, target.port, target.ip) == ("media.test", 8123, "127.0.0.1")
    by_port = UrlPolicy(allow_hosts=frozenset({"loop.test:8080"}), resolver_overrides={"loop.test": "127.0.0.1"})
    assert asyncio.run(resolve_checked("http://loop.test:8080/", by_port)).ip == "127.0.0.1"
    with pytest.raises(UrlForbidden):
        asyncio.run(resolve_checked("http://loop.test:8081/", by_port))


def test_pinned_backend_never_resolves_on_its_own() -> None:
    backend = _PinnedBackend()
    with pytest.raises(httpcore.ConnectError, match="unchecked"):
        asyncio.run(backend.connect_tcp("media.test", 80))


@pytest.fixture()
def www(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    with serve_folder(root) as port:
        yield f"http://media.test:{port}", root


def fetch(url: str, dest: Path, max_bytes: int = 1_000_000) -> int:
    return asyncio.run(fetch_url(url, dest, max_bytes=max_bytes, timeout_s=10, policy=POLICY))


def test_fetch_from_an_allowlisted_host_and_redirects(www: tuple[str, Path], tmp_path: Path) -> None:
    base, root = www
    (root / "clip.mp4").write_bytes(b"v" * 5000)
    assert fetch(f"{base}/clip.mp4", tmp_path / "a") == 5000
    assert fetch(f"{base}/redirect?to=/clip.mp4", tmp_path / "b") == 5000
    assert (tmp_path / "b").read_bytes() == b"v" * 5000


@pytest.mark.parametrize(
    ("target", "error", "message"),
    [
        ("http://metadata.test/latest/meta-data/", UrlForbidden, "metadata"),
        ("http://ten.test:8080/a.mp4", UrlForbidden, "private"),
        ("http://127.0.0.1:{port}/clip.mp4", UrlForbidden, "loopback"),  # same server, but by raw address
        ("file:///etc/passwd", UrlForbidden, "http"),
        ("/loop", UrlFetchFailed, "more than 3"),
        ("/missing.mp4", UrlFetchFailed, "404"),
    ],
)
def test_redirect_targets_are_checked(
    www: tuple[str, Path], tmp_path: Path, target: str, error: type[Exception], message: str
) -> None:
    base, root = www
    (root / "clip.mp4").write_bytes(b"v" * 10)
    target = target.format(port=base.rsplit(":", 1)[1])
    with pytest.raises(error, match=message):
        fetch(f"{base}/redirect?to={target}", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_size_limit_and_unreachable(www: tuple[str, Path], tmp_path: Path) -> None:
    base, root = www
    (root / "big.mp4").write_bytes(b"v" * 5000)
    with pytest.raises(PayloadTooLarge, match="limit is 4000"):
        fetch(f"{base}/big.mp4", tmp_path / "a", max_bytes=4000)
    with pytest.raises(UrlFetchFailed, match="could not fetch") as caught:
        fetch("http://media.test:9/nothing.mp4", tmp_path / "b")  # allowlisted, nothing listening
    assert caught.value.reason == "network"


@pytest.mark.parametrize(("path", "reason"), [("/loop", "redirect"), ("/missing.mp4", "http-status")])
def test_a_failed_fetch_names_its_reason(www: tuple[str, Path], tmp_path: Path, path: str, reason: str) -> None:
    # The label of reelserve_fetch_failures_total (serve_app.observability.metrics).
    base, _ = www
    with pytest.raises(UrlFetchFailed) as caught:
        fetch(f"{base}{path}", tmp_path / "out")
    assert caught.value.reason == reason
