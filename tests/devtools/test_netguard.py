"""The loopback guard itself: what counts as local, and that every hook is in place while installed.

Blocked cases are checked through the guard's own checks (and through the installed wrappers,
which run the check before the original), so a broken guard cannot send anything off the machine.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
import uvloop

from serve_app.devtools import netguard
from serve_app.devtools.netguard import (
    EgressBlocked,
    install_loopback_guard,
    is_installed,
    is_local_address,
    is_local_name,
    uninstall_loopback_guard,
)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
def test_local_addresses(host: str) -> None:
    assert is_local_address(host)


@pytest.mark.parametrize("host", ["10.0.0.1", "169.254.169.254", "0.0.0.0", "8.8.8.8", "::", "example.com"])
def test_non_local_addresses(host: str) -> None:
    assert not is_local_address(host)


def test_names_that_need_no_dns() -> None:
    assert all(is_local_name(n) for n in ["localhost", "LOCALHOST.", "app.localhost", "10.0.0.1", "2130706433", None])
    assert not any(is_local_name(n) for n in ["example.com", "media.test", b"metadata.google.internal"])


def test_checks_refuse_and_report() -> None:
    blocked: list[str] = []
    install_loopback_guard(blocked.append)
    try:
        assert is_installed()
        tcp = socket.socket()
        with tcp, pytest.raises(EgressBlocked):
            netguard._check_connect(tcp, ("10.0.0.1", 80))
        with pytest.raises(EgressBlocked):
            netguard._check_create_connection(None, None, "169.254.169.254", 80)
        with pytest.raises(EgressBlocked):
            netguard._check_lookup("example.com", 80)
        with pytest.raises(EgressBlocked):  # through the installed wrapper: refused before any lookup
            socket.getaddrinfo("example.com", 80)
        assert len(blocked) == 4
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with udp:
            netguard._check_connect(udp, ("10.0.0.1", 53))  # a UDP connect sends nothing
    finally:
        uninstall_loopback_guard()
    assert not is_installed() and socket.getaddrinfo.__module__ == "socket"


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop])
def test_loopback_still_works_under_the_guard(loop_factory) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    install_loopback_guard()
    try:
        socket.create_connection(server.getsockname()).close()

        async def connect() -> None:
            _, writer = await asyncio.open_connection("127.0.0.1", server.getsockname()[1])
            writer.close()
            with pytest.raises(EgressBlocked):
                await asyncio.get_running_loop().getaddrinfo("example.com", 80)

        loop = loop_factory()
        try:
            loop.run_until_complete(connect())
        finally:
            loop.close()
    finally:
        uninstall_loopback_guard()
        server.close()
