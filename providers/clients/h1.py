"""HTTP/1.1 to the upstreams: a request, its response head, and a body read straight
off the connection's buffer.

httpx's own transport hands each chunk of a chunked body up through h11's event
machinery and five generator layers of httpcore and httpx, twice per chunk (the chunk,
then the next chunk's header), and an upstream sends one chunk per token: a quarter of
what reading a stream cost in a profile, the largest part after the socket's own read
(``make bench-upstream``). Here h11 writes
the request and parses the response head, which happens once; the body's framing
(chunked, a length, or until the connection closes) is decoded from the buffer in one
pass per read, and every complete piece of body in a read comes up at once.

``H1Transport`` is an ``httpx`` transport over one connection at a time: it keeps the
connection after a response read to its end (the upstream allowing), for the next
request, for up to ``keepalive`` seconds; a request made while it is in use opens
another, which is closed after its response. ``SharedPool`` keeps many of them.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import h11
import httpcore
import httpx

from providers.clients.aio import AsyncioBackend, AsyncioStream

#: The longest chunk-size or trailer line accepted (h11's limit on a line is 64 KiB).
MAX_LINE = 64 * 1024
#: How much a read takes off the connection's buffer at most.
READ_SIZE = 256 * 1024

# A chunk-size line: hex digits, then perhaps extensions (ignored, as h11 does).
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;.*)?")

_MAPPED: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (h11.RemoteProtocolError, httpx.RemoteProtocolError),
    (h11.LocalProtocolError, httpx.LocalProtocolError),
)


def _raise_mapped(error: Exception, request: httpx.Request) -> NoReturn:
    for theirs, ours in _MAPPED:
        if isinstance(error, theirs):
            raise ours(str(error) or type(error).__name__, request=request) from None
    raise error


class _Connection:
    """One socket to one origin."""

    def __init__(self, stream: AsyncioStream) -> None:
        self.stream = stream

    def usable(self) -> bool:
        """Open, and with nothing unasked-for waiting (a response to nothing means the
        upstream is closing it, or broke the protocol)."""
        return not self.stream.get_extra_info("is_readable")

    async def read(self, timeout: float | None) -> bytes:  # noqa: ASYNC109
        return await self.stream.read(READ_SIZE, timeout)

    def close(self) -> None:
        self.stream.close()


class H1Transport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        *,
        verify: ssl.SSLContext | bool = True,
        backend: httpcore.AsyncNetworkBackend | None = None,
        keepalive: float = 5.0,
    ) -> None:
        self._verify = verify
        self._ssl_context: ssl.SSLContext | None = None
        self._backend = backend or AsyncioBackend()
        self.keepalive = keepalive
        self._idle: _Connection | None = None
        self._idle_since = 0.0
        self._closed = False

    def has_idle_connection(self) -> bool:
        """Whether a connection is kept for the next request."""
        return self._idle is not None and self._idle.usable()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        connection = self._take_idle()
        try:
            if connection is None:
                connection = await self._connect(request, timeouts.get("connect"))
            head, reader = await _exchange(connection, request, timeouts)
        except BaseException as error:
            if connection is not None:
                connection.close()
            if isinstance(error, Exception):
                _raise_mapped(error, request)
            raise
        body = _Body(self, connection, request, head, reader, timeouts.get("read"))
        return httpx.Response(
            head.status_code,
            headers=head.headers,
            stream=body,
            extensions={"http_version": b"HTTP/" + head.http_version, "reason_phrase": head.reason},
        )

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, None
        if idle is not None:
            idle.close()

    def _take_idle(self) -> _Connection | None:
        idle, self._idle = self._idle, None
        if idle is None:
            return None
        fresh = asyncio.get_running_loop().time() - self._idle_since < self.keepalive
        if fresh and idle.usable():
            return idle
        idle.close()
        return None

    def _give_back(self, connection: _Connection) -> None:
        if self._idle is None and not self._closed and self.keepalive > 0 and connection.usable():
            self._idle, self._idle_since = connection, asyncio.get_running_loop().time()
        else:
            connection.close()

    async def _connect(self, request: httpx.Request, timeout: float | None) -> _Connection:  # noqa: ASYNC109
        url = request.url
        host = url.host
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"{scheme!r} is not http or https", request=request)
        port = url.port or (443 if scheme == "https" else 80)
        stream = await self._backend.connect_tcp(host, port, timeout=timeout)
        if scheme == "https":
            stream = await stream.start_tls(self._tls(), server_hostname=host, timeout=timeout)
        assert isinstance(stream, AsyncioStream)
        return _Connection(stream)

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            verify = self._verify
            context = (
                verify
                if isinstance(verify, ssl.SSLContext)
                else httpx.create_ssl_context(verify=verify)
            )
            context.set_alpn_protocols(["http/1.1"])
            self._ssl_context = context
        return self._ssl_context


async def _exchange(
    connection: _Connection, request: httpx.Request, timeouts: dict[str, float | None]
) -> tuple[h11.Response, _Reader]:
    """Write the request; read the response head. Returns the head and the body's reader,
    holding whatever of the body came with the head."""
    state = h11.Connection(our_role=h11.CLIENT)
    headers = list(request.headers.raw)
    target = request.url.raw_path
    write = timeouts.get("write")
    out = state.send(h11.Request(method=request.method, target=target, headers=headers))
    assert out is not None
    body = await request.aread()  # the upstreams' requests are small JSON documents
    if body:
        out += state.send(h11.Data(data=body)) or b""
    out += state.send(h11.EndOfMessage()) or b""
    await connection.stream.write(out, write)

    read = timeouts.get("read")
    while True:
        event = state.next_event()
        if event is h11.NEED_DATA:
            state.receive_data(await connection.read(read))
            continue
        if isinstance(event, h11.InformationalResponse):
            continue  # 100 Continue and the like: the real answer follows
        if isinstance(event, h11.Response):
            break
        raise h11.RemoteProtocolError(f"unexpected {type(event).__name__} before a response")
    leftover, _ = state.trailing_data
    return event, _Reader.for_response(request, event, bytearray(leftover))


class _Reader:
    """Decodes one body's framing from the bytes read off its connection."""

    def __init__(self, raw: bytearray, *, chunked: bool, length: int | None) -> None:
        self.raw = raw
        self.chunked = chunked
        self.length = length  # bytes of body left; None: until the connection closes
        self.done = length == 0 and not chunked
        # Chunked: bytes left in the current chunk, then its CRLF; -1 reading a size
        # line; -2 reading trailers.
        self._left = -1
        self._crlf = False

    @classmethod
    def for_response(cls, request: httpx.Request, head: h11.Response, raw: bytearray) -> _Reader:
        status = head.status_code
        if request.method == "HEAD" or status in (204, 304):
            return cls(raw, chunked=False, length=0)
        headers = httpx.Headers(head.headers)
        coding = headers.get("transfer-encoding", "").lower()
        if coding:
            # h11 accepts only "chunked" here, and refuses a Content-Length beside it.
            return cls(raw, chunked=True, length=None)
        length = headers.get("content-length")
        return cls(raw, chunked=False, length=int(length) if length is not None else None)

    def take(self) -> bytes:
        """The body bytes complete in what has been read, consumed from it."""
        if self.chunked:
            return self._dechunk()
        raw, self.raw = self.raw, bytearray()
        if self.length is not None:
            if len(raw) >= self.length:
                extra = raw[self.length :]
                raw = raw[: self.length]
                self.raw = extra
                self.length = 0
                self.done = True
            else:
                self.length -= len(raw)
        return bytes(raw)

    def eof(self) -> None:
        """The connection closed: the end of a body read until then, or broken off."""
        if self.length is None and not self.chunked:
            self.done = True
            return
        raise h11.RemoteProtocolError(
            "peer closed connection without sending complete message body: "
            + ("incomplete chunked read" if self.chunked else f"{self.length} bytes missing")
        )

    def _dechunk(self) -> bytes:
        raw = self.raw
        pos, end, out = 0, len(raw), []
        while not self.done:
            if self._left > 0:
                piece = min(self._left, end - pos)
                if not piece:
                    break
                out.append(raw[pos : pos + piece])
                pos += piece
                self._left -= piece
                if not self._left:
                    self._crlf = True
            elif self._crlf:
                if end - pos < 2:
                    break
                if raw[pos : pos + 2] != b"\r\n":
                    raise h11.RemoteProtocolError("a chunk does not end in CRLF")
                pos += 2
                self._crlf, self._left = False, -1
            else:
                line_end = raw.find(b"\r\n", pos)
                if line_end < 0:
                    if end - pos > MAX_LINE:
                        raise h11.RemoteProtocolError("chunk header or trailer too long")
                    break
                line = bytes(raw[pos:line_end])
                pos = line_end + 2
                if self._left == -2:  # trailers, until an empty line
                    if not line:
                        self.done = True
                    continue
                match = _CHUNK_SIZE.fullmatch(line)
                if match is None:
                    raise h11.RemoteProtocolError("malformed chunk size")
                size = int(match.group(1), 16)
                self._left = size if size else -2
        del raw[:pos]
        return b"".join(out)


class _Body(httpx.AsyncByteStream):
    def __init__(
        self,
        transport: H1Transport,
        connection: _Connection,
        request: httpx.Request,
        head: h11.Response,
        reader: _Reader,
        timeout: float | None,
    ) -> None:
        self._transport = transport
        self._connection: _Connection | None = connection
        self._request = request
        self._reader = reader
        self._timeout = timeout
        self._keep = (
            head.http_version == b"1.1"
            and not _says_close(head.headers)
            and not _says_close(request.headers.raw)
        )

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        connection, reader = self._connection, self._reader
        if connection is None:
            return
        try:
            while True:
                data = reader.take()
                if data:
                    yield data
                if reader.done:
                    break
                more = await connection.read(self._timeout)
                if more:
                    reader.raw += more
                else:
                    reader.eof()
                    if reader.done:
                        self._keep = False
                        break
        except Exception as error:  # noqa: BLE001 - mapped to httpx's errors
            self._keep = False
            _raise_mapped(error, self._request)

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._keep and self._reader.done and not self._reader.raw:
            self._transport._give_back(connection)
        else:
            connection.close()


def _says_close(headers: Any) -> bool:
    return any(
        name.lower() == b"connection" and b"close" in value.lower() for name, value in headers
    )


def asyncio_transport(
    *,
    verify: ssl.SSLContext | bool = True,
    backend: httpcore.AsyncNetworkBackend | None = None,
    keepalive: float = 5.0,
) -> H1Transport:
    """A transport reading through ``backend`` (``AsyncioBackend`` by default) that
    keeps its connection ``keepalive`` seconds between requests (0: not at all)."""
    return H1Transport(verify=verify, backend=backend, keepalive=keepalive)
