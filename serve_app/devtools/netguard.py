"""A process-wide guard that keeps outbound traffic on loopback (tests and sandboxes).

`install_loopback_guard()` wraps, in this process, every Python-level way to
open a connection or look up a name: `socket.socket.connect`/`connect_ex`
(blocking code and asyncio's selector loop), `socket.getaddrinfo` (and with
it `socket.create_connection`), and the event-loop methods that connect or
resolve in C under uvloop (Ray's default loop in actors). A TCP connection to
a non-loopback address, or a DNS lookup of a name that could leave the machine,
raises `EgressBlocked` before anything is sent, and the `on_block` callback is
told (the test suite records it and fails the test).

It is a safety net under the real defence (serve_app.http.fetch's checks), not a
replacement: the test session installs it in the test process, and the ingress
replica installs it when `security.loopback_only_egress` is set.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import socket
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

__all__ = [
    "EgressBlocked",
    "install_loopback_guard",
    "is_installed",
    "is_local_address",
    "is_local_name",
    "uninstall_loopback_guard",
]

_installed: list[Callable[[str], None]] = []
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


class EgressBlocked(ConnectionRefusedError):
    """A connection or lookup that could leave the machine was refused by the guard."""


def is_local_address(host: Any) -> bool:
    """True for loopback IP addresses (and IPv4-mapped loopback)."""
    try:
        ip = ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _is_localhost(host: Any) -> bool:
    name = (host.decode() if isinstance(host, bytes) else str(host)).lower().rstrip(".")
    return name in _LOCAL_NAMES or name.endswith(".localhost")


def is_local_name(host: Any) -> bool:
    """Names whose lookup needs no DNS query: IP literals (any form inet_aton takes) and localhost."""
    if host is None:
        return True
    if _is_localhost(host):
        return True
    name = (host.decode() if isinstance(host, bytes) else str(host)).lower().rstrip(".")
    try:
        ipaddress.ip_address(name.split("%")[0])
        return True
    except ValueError:
        pass
    try:
        socket.inet_aton(name)
        return True
    except OSError:
        return False


def _refuse(what: str) -> EgressBlocked:
    for callback in _installed:
        callback(what)
    logger.error("netguard: blocked %s", what)
    return EgressBlocked(f"netguard: {what} would leave loopback")


def _check_sockaddr(sock: socket.socket, address: Any) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
        host = address[0] if isinstance(address, tuple) else address
        if not (is_local_address(host) or _is_localhost(host)):
            raise _refuse(f"TCP connection to {address!r}")


def _wrap_sync(original: Callable[..., Any], check: Callable[..., None]) -> Callable[..., Any]:
    @functools.wraps(original)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        check(*args, **kwargs)
        return original(*args, **kwargs)

    guarded.__netguard_original__ = original  # type: ignore[attr-defined]
    return guarded


def _wrap_async(original: Callable[..., Any], check: Callable[..., None]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def guarded(*args: Any, **kwargs: Any) -> Any:
        check(*args, **kwargs)
        return await original(*args, **kwargs)

    guarded.__netguard_original__ = original  # type: ignore[attr-defined]
    return guarded


def _check_connect(sock: socket.socket, address: Any, *_: Any) -> None:
    _check_sockaddr(sock, address)


def _check_lookup(host: Any, *_: Any, **__: Any) -> None:
    if not is_local_name(host):
        raise _refuse(f"name lookup of {host!r}")


def _check_loop_lookup(_loop: Any, host: Any, *_: Any, **__: Any) -> None:
    _check_lookup(host)


def _check_loop_sock_connect(_loop: Any, sock: socket.socket, address: Any) -> None:
    _check_sockaddr(sock, address)


def _check_create_connection(_loop: Any, _factory: Any, host: Any = None, port: Any = None, **kwargs: Any) -> None:
    sock = kwargs.get("sock")
    if sock is not None:
        try:
            peer = sock.getpeername()
        except OSError:
            return  # not connected yet: its connect() goes through the guarded socket method
        _check_sockaddr(sock, peer)
        return
    if host is not None and not (is_local_address(host) or _is_localhost(host)):
        raise _refuse(f"connection to {host!r}:{port}")


def _patch(owner: Any, name: str, wrapper: Callable[..., Any], check: Callable[..., None]) -> None:
    original = getattr(owner, name)
    if getattr(original, "__netguard_original__", None) is None:
        setattr(owner, name, wrapper(original, check))


def _targets() -> list[tuple[Any, str, Callable[..., Any], Callable[..., None]]]:
    targets: list[tuple[Any, str, Callable[..., Any], Callable[..., None]]] = [
        (socket.socket, "connect", _wrap_sync, _check_connect),
        (socket.socket, "connect_ex", _wrap_sync, _check_connect),
        (socket, "getaddrinfo", _wrap_sync, _check_lookup),
    ]
    loops: list[Any] = [asyncio.BaseEventLoop]
    try:
        import uvloop

        loops.append(uvloop.Loop)
    except ImportError:  # uvloop is optional
        pass
    for loop_cls in loops:
        targets += [
            (loop_cls, "create_connection", _wrap_async, _check_create_connection),
            (loop_cls, "sock_connect", _wrap_async, _check_loop_sock_connect),
            (loop_cls, "getaddrinfo", _wrap_async, _check_loop_lookup),
        ]
    return targets


def is_installed() -> bool:
    return all(hasattr(getattr(owner, name), "__netguard_original__") for owner, name, _, _ in _targets())


def install_loopback_guard(on_block: Callable[[str], None] | None = None) -> None:
    """Install the guard in this process (idempotent); `on_block` is called with a description of each refusal."""
    if on_block is not None and on_block not in _installed:
        _installed.append(on_block)
    for owner, name, wrapper, check in _targets():
        _patch(owner, name, wrapper, check)
    logger.warning("netguard: outbound connections limited to loopback in this process")


def uninstall_loopback_guard() -> None:
    """Restore the original functions (tests that install the guard for a while)."""
    for owner, name, _, _ in _targets():
        original = getattr(getattr(owner, name), "__netguard_original__", None)
        if original is not None:
            setattr(owner, name, original)
    _installed.clear()
