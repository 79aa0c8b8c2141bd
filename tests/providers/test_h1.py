"""The HTTP/1.1 transport every upstream call goes through (``providers.clients.h1``),
against a loopback server that writes exactly the bytes each test gives it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest

from providers.clients.h1 import asyncio_transport

Answer = Sequence[bytes]  # written one piece at a time, each piece flushed on its own


@dataclass
class Server:
    port: int
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/chat"


@asynccontextmanager
async def scripted(*answers: Answer, close_after: bool = False) -> AsyncIterator[Server]:
    """Answers each request with the next answer, on whichever connection it came;
    ``close_after`` closes the connection after each answer."""
    queue = list(answers)
    writers: list[asyncio.StreamWriter] = []
    server_state = Server(port=0)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        server_state.connections += 1
        try:
            while True:  # the connection stays open until the client closes it
                head = await reader.readuntil(b"\r\n\r\n")
                if not queue:
                    break
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                server_state.requests.append(head + await reader.readexactly(length))
                for piece in queue.pop(0):
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0.002)
                if close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    server_state.port = server.sockets[0].getsockname()[1]
    try:
        yield server_state
    finally:
        server.close()
        for writer in writers:
            writer.close()


CHUNKED_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)


def _bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


async def _post(client: httpx.AsyncClient, url: str) -> tuple[int, list[bytes]]:
    async with client.stream("POST", url, json={"stream": True}) as response:
        return response.status_code, [piece async for piece in response.aiter_raw()]


@pytest.fixture
async def client():
    async with httpx.AsyncClient(transport=asyncio_transport(keepalive=30), timeout=5) as client:
        yield client


async def test_a_chunked_body_split_at_every_byte_arrives_whole_and_its_connection_is_kept(
    client,
):
    body = (
        b"7;name=value\r\ndata: 1\r\n"  # an extension, ignored
        b"A\r\n\n\ndata: 22\r\n"
        b"0\r\nx-trailer: yes\r\n\r\n"  # a trailer, ignored
    )
    async with scripted(_bytewise(CHUNKED_HEAD + body), [CHUNKED_HEAD, b"0\r\n\r\n"]) as server:
        status, pieces = await _post(client, server.url)
        again, _ = await _post(client, server.url)

    assert status == again == 200
    assert b"".join(pieces) == b"data: 1\n\ndata: 22"
    assert server.connections == 1


async def test_chunks_that_arrive_together_come_up_in_one_piece(client):
    chunks = b"".join(b"%x\r\ndata: %d\n\n\r\n" % (len(b"data: %d\n\n" % n), n) for n in range(5))
    async with scripted([CHUNKED_HEAD, chunks + b"0\r\n\r\n"]) as server:
        _, pieces = await _post(client, server.url)

    assert pieces == [b"".join(b"data: %d\n\n" % n for n in range(5))]


async def test_a_body_of_a_set_length_is_read_to_its_length_and_its_connection_kept(client):
    answer = [b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\nhello", b" world"]
    async with scripted(answer, answer) as server:
        first = await client.post(server.url, json={})
        second = await client.post(server.url, json={})

    assert first.text == second.text == "hello world"
    assert server.connections == 1


async def test_a_body_read_until_the_connection_closes_is_whole_and_the_connection_not_kept(
    client,
):
    answer = [b"HTTP/1.1 200 OK\r\n\r\nall of it ", b"until the end"]
    async with scripted(answer, answer, close_after=True) as server:
        first = await client.post(server.url, json={})
        second = await client.post(server.url, json={})

    assert first.text == second.text == "all of it until the end"
    assert server.connections == 2


async def test_a_response_that_says_close_does_not_keep_its_connection(client):
    answer = [b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"]
    async with scripted(answer, answer, close_after=True) as server:
        assert (await client.post(server.url, json={})).text == "ok"
        assert (await client.post(server.url, json={})).text == "ok"

    assert server.connections == 2


async def test_an_informational_response_before_the_answer_is_skipped(client):
    answer = [
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n",
    ]
    async with scripted(answer) as server:
        response = await client.post(server.url, json={})

    assert response.status_code == 201


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        ([CHUNKED_HEAD, b"5\r\nhello\r\n"], "incomplete chunked read"),  # cut off
        ([CHUNKED_HEAD, b"zz\r\nhello\r\n0\r\n\r\n"], "malformed chunk size"),
        ([CHUNKED_HEAD, b"5\r\nhelloXX0\r\n\r\n"], "does not end in CRLF"),
        ([b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello"], "5 bytes missing"),
        ([CHUNKED_HEAD, b"1" * 70_000], "too long"),
    ],
    ids=["cut-off", "bad-size", "no-crlf", "short-length", "endless-size-line"],
)
async def test_a_broken_body_raises_a_protocol_error(client, answer, says):
    async with scripted(answer, close_after=True) as server:
        with pytest.raises(httpx.RemoteProtocolError, match=says):
            await _post(client, server.url)


async def test_a_broken_response_head_raises_a_protocol_error(client):
    async with (
        scripted([b"HTTP/1.1 nonsense\r\n\r\n"], close_after=True) as server,
    ):
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(server.url, json={})


async def test_a_silent_upstream_raises_a_read_timeout(client):
    async with (
        scripted([CHUNKED_HEAD, b"5\r\nhello\r\n"]) as server,
        httpx.AsyncClient(
            transport=asyncio_transport(), timeout=httpx.Timeout(5, read=0.2)
        ) as impatient,
    ):
        with pytest.raises(httpx.ReadTimeout):
            await _post(impatient, server.url)


async def test_a_request_made_while_the_connection_is_busy_opens_another(client):
    slow = [CHUNKED_HEAD, b"2\r\nok\r\n", b"0\r\n\r\n"]
    async with scripted(slow, slow, slow) as server:
        results = await asyncio.gather(_post(client, server.url), _post(client, server.url))
        await _post(client, server.url)  # on the one connection kept

    assert [b"".join(pieces) for _, pieces in results] == [b"ok", b"ok"]
    assert server.connections == 2


async def test_a_body_left_unread_closes_its_connection(client):
    endless = [CHUNKED_HEAD, b"2\r\nok\r\n", b"2\r\nok\r\n"]
    async with scripted(endless, [CHUNKED_HEAD, b"0\r\n\r\n"]) as server:
        async with client.stream("POST", server.url, json={}) as response:
            async for _ in response.aiter_raw():
                break
        await _post(client, server.url)

    assert server.connections == 2


async def test_the_request_goes_out_as_written(client):
    async with scripted([b"HTTP/1.1 204 No Content\r\n\r\n"]) as server:
        await client.post(server.url + "?q=1", json={"a": 1}, headers={"X-Custom": "yes"})

    request = server.requests[0]
    assert request.startswith(b"POST /v1/chat?q=1 HTTP/1.1\r\n")
    assert b"\r\nX-Custom: yes\r\n" in request
    assert request.endswith(b'\r\n\r\n{"a":1}')


async def test_a_url_that_is_not_http_is_refused_before_connecting():
    with pytest.raises(httpx.UnsupportedProtocol):
        await asyncio_transport().handle_async_request(httpx.Request("POST", "ftp://127.0.0.1/"))
