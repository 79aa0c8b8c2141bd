"""An asyncio-native network backend (httpcore's interface): the cheap way to read a
stream.

httpcore reaches asyncio through anyio by default. Its socket stream resumes reading
before every receive and pauses again after every chunk, two ``epoll_ctl`` calls and
several layers of anyio per token an upstream sends; with a hundred replies streaming,
that was the largest single cost of the relay (``make bench-upstream``). Here the loop
reads into a buffer for as long as the buffer stays small, and a read takes what is
there, waiting (with a timer) only when nothing is.

``providers.clients.h1`` reads HTTP through it, and takes body bytes straight from its
buffer.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore

# Stop reading from the socket while this much is buffered and not yet taken.
_HIGH_WATER = 256 * 1024


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self._readable: asyncio.Future[None] | None = None
        self._read_deadline = 0.0
        self._read_timer: asyncio.TimerHandle | None = None
        self._writable: asyncio.Future[None] | None = None
        self._reading_paused = False

    # --- asyncio's side ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > _HIGH_WATER and not self._reading_paused and self.transport:
            self.transport.pause_reading()
            self._reading_paused = True
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        if exc is not None and self.error is None:
            self.error = exc
        self._wake_reader()
        self._wake_writer()
        if self._read_timer is not None:
            self._read_timer.cancel()

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._wake_writer()

    # --- ours ---------------------------------------------------------------------

    def _wake_reader(self) -> None:
        if self._readable is not None and not self._readable.done():
            self._readable.set_result(None)

    def _wake_writer(self) -> None:
        waiter, self._writable = self._writable, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_readable(self, timeout: float | None) -> None:  # noqa: ASYNC109
        """Wait for data, the end, or ``timeout`` (ReadTimeout).

        One timer serves every wait: it is re-armed only when it fires while a wait is
        still under way, so a stream of small chunks does not set and cancel a timer
        per chunk."""
        loop = asyncio.get_running_loop()
        self._readable = loop.create_future()
        if timeout is not None:
            self._read_deadline = loop.time() + timeout
            timer = self._read_timer
            if timer is None or timer.when() > self._read_deadline:
                if timer is not None:
                    timer.cancel()
                self._read_timer = loop.call_at(self._read_deadline, self._check_read)
        try:
            await self._readable
        finally:
            self._readable = None

    def _check_read(self) -> None:
        self._read_timer = None
        waiter = self._readable
        if waiter is None or waiter.done():
            return  # no wait under way: the next one arms the timer again
        loop = asyncio.get_running_loop()
        if loop.time() >= self._read_deadline:
            waiter.set_exception(httpcore.ReadTimeout("timed out reading from the upstream"))
        else:
            self._read_timer = loop.call_at(self._read_deadline, self._check_read)

    def take(self, max_bytes: int) -> bytes:
        data = bytes(self.buffer[:max_bytes])
        del self.buffer[:max_bytes]
        if self._reading_paused and len(self.buffer) <= _HIGH_WATER // 4 and self.transport:
            self.transport.resume_reading()
            self._reading_paused = False
        return data

    async def drained(self) -> None:
        if self._writable is not None:
            await asyncio.shield(self._writable)


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        protocol = self._protocol
        if not protocol.buffer and not protocol.eof:
            await protocol.wait_readable(timeout)
        if protocol.buffer:
            return protocol.take(max_bytes)
        if protocol.error is not None:
            raise httpcore.ReadError(str(protocol.error) or type(protocol.error).__name__)
        return b""  # the end of the stream

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if not buffer:
            return
        if self._transport.is_closing():
            raise httpcore.WriteError(str(self._protocol.error or "the connection is closed"))
        self._transport.write(buffer)
        try:
            async with asyncio.timeout(timeout):
                await self._protocol.drained()
        except TimeoutError:
            raise httpcore.WriteTimeout("timed out writing to the upstream") from None
        if self._protocol.error is not None:
            raise httpcore.WriteError(str(self._protocol.error))

    def close(self) -> None:
        """Close the connection now (nothing to wait for: asyncio sends what is
        buffered, then closes)."""
        self._transport.close()

    async def aclose(self) -> None:
        self.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> AsyncioStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self._transport, self._protocol, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError:
            self._transport.close()
            raise httpcore.ConnectTimeout("timed out during the TLS handshake") from None
        except (OSError, ssl.SSLError) as error:
            self._transport.close()
            raise httpcore.ConnectError(str(error) or type(error).__name__) from None
        assert isinstance(transport, asyncio.Transport)
        self._protocol.transport = transport
        return AsyncioStream(transport, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        if info == "is_readable":
            # The loop reads as data comes: an idle connection with anything buffered,
            # or closed by the other end, is not one to send a new request on.
            protocol = self._protocol
            return bool(protocol.buffer) or protocol.eof or self._transport.is_closing()
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> AsyncioStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_connection(
                    _Protocol,
                    host,
                    port,
                    local_addr=(local_address, 0) if local_address else None,
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"timed out connecting to {host}") from None
        except OSError as error:
            raise httpcore.ConnectError(str(error) or type(error).__name__) from None
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        assert isinstance(transport, asyncio.Transport)
        return AsyncioStream(transport, protocol)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not used for upstreams")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
