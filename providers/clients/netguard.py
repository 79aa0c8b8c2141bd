"""Keep upstream calls off private networks (SSRF).

A base URL typed into the admin could point Parley, with its API key, at a service
on the server's own network. ``GuardedTransport`` resolves the host itself at connect
time, refuses loopback, private, link-local, shared (CGNAT), multicast, reserved and
unspecified addresses (IPv4-mapped IPv6 included), and connects to the address it
checked, so a DNS answer that changes between the admin's check and the call
(rebinding) cannot slip through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from providers.clients.aio import AsyncioBackend
from providers.clients.h1 import H1Transport, asyncio_transport

_CGNAT = ipaddress.ip_network("100.64.0.0/10")


class BlockedAddressError(httpx.ConnectError):
    """The host resolves to an address Parley does not call."""


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            ip = mapped
    if ip.version == 4 and ip in _CGNAT:
        return False
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def public_addresses(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to; raises BlockedAddressError if any is not
    public (a name that mixes in one private address is refused whole)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return _checked(host, (str(info[4][0]) for info in infos))


def _checked(host: str, addresses: Iterable[str]) -> list[str]:
    found = list(dict.fromkeys(addresses))
    if not found:
        raise BlockedAddressError(f"{host} does not resolve")
    for address in found:
        if not is_public(address):
            raise BlockedAddressError(f"{host} resolves to a non-public address")
    return found


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self.inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as error:
            raise httpcore.ConnectError(f"{host} does not resolve") from error
        try:
            addresses = _checked(host, (str(info[4][0]) for info in infos))
        except BlockedAddressError as error:
            raise httpcore.ConnectError(str(error)) from None
        # Connect to the address just checked, not to the name (TLS still verifies
        # the name: H1Transport passes the request's host as the server name).
        return await self.inner.connect_tcp(
            addresses[0], port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not allowed for upstreams")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncBaseTransport):
    """An HTTP transport that only connects to public addresses.

    It is reusable: each close (open_stream closes its transport after each request)
    only closes the connection of that use. Connections kept between
    requests go through a ``SharedPool`` of ``guarded_transport`` instead.
    """

    def __init__(self, *, verify: ssl.SSLContext | bool = True) -> None:
        self.verify = verify
        self._inner: H1Transport | None = None

    def _transport(self) -> H1Transport:
        if self._inner is None:
            self._inner = guarded_transport(verify=self.verify)
        return self._inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._transport().handle_async_request(request)

    async def aclose(self) -> None:
        inner, self._inner = self._inner, None
        if inner is not None:
            await inner.aclose()


def guarded_transport(
    *, verify: ssl.SSLContext | bool = True, keepalive: float = 5.0
) -> H1Transport:
    """A transport that only opens connections to public addresses."""
    return asyncio_transport(
        verify=verify, backend=_GuardedBackend(AsyncioBackend()), keepalive=keepalive
    )
