"""The asyncio network backend every upstream call reads through, plain and over TLS."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from providers.clients.h1 import asyncio_transport
from providers.clients.http import (
    Timeouts,
    bearer_endpoint,
    encode_body,
    json_payloads,
    open_stream,
    sse_events,
)
from providers.clients.netguard import GuardedTransport
from tests.live import self_signed_certificate


@asynccontextmanager
async def sse_server(
    *,
    events: int = 50,
    stall_after: int | None = None,
    tls: ssl.SSLContext | None = None,
    gzip: bool = False,
    received: list[tuple[bytes, bytes]] | None = None,
) -> AsyncIterator[int]:
    """An upstream that answers any request with ``events`` SSE events, one write each
    (a chunked body, as the real APIs send), going silent after ``stall_after``; with
    ``gzip``, compressed as one stream flushed after each event. Each request's head
    and body go in ``received``."""

    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length: *(\d+)", head)
        body = await reader.readexactly(int(length[1])) if length else b""
        if received is not None:
            received.append((head, body))
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            + (b"content-encoding: gzip\r\n" if gzip else b"")
            + b"transfer-encoding: chunked\r\n\r\n"
        )
        compressor = zlib.compressobj(wbits=31)
        for index in range(events):
            if index == stall_after:
                await asyncio.sleep(30)
            body = f'data: {{"n": {index}, "text": "é{index}"}}\n\n'.encode()
            if gzip:
                body = compressor.compress(body) + compressor.flush(zlib.Z_SYNC_FLUSH)
            writer.write(b"%x\r\n%s\r\n" % (len(body), body))
            await writer.drain()
            await asyncio.sleep(0.001)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.close()


def _numbers(lines: list[str]) -> list[int]:
    return [int(line.split('"n": ')[1].split(",")[0]) for line in lines if line.startswith("data")]


async def _lines(url: str, transport: httpx.AsyncBaseTransport) -> list[str]:
    async with (
        httpx.AsyncClient(transport=transport, timeout=5) as client,
        client.stream("POST", url, json={}) as response,
    ):
        return [line async for line in response.aiter_lines()]


async def test_a_stream_arrives_whole_in_order():
    async with sse_server(events=200) as port:
        lines = await _lines(f"http://127.0.0.1:{port}/v1", asyncio_transport())
    assert _numbers(lines) == list(range(200))
    assert '"text": "é7"' in lines[14]


async def test_a_stream_over_tls_verifies_the_certificate(tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    client_tls = ssl.create_default_context(cafile=str(cert))
    async with sse_server(events=100, tls=server_tls) as port:
        lines = await _lines(f"https://localhost:{port}/v1", asyncio_transport(verify=client_tls))
        assert _numbers(lines) == list(range(100))
        # A certificate nobody vouched for is refused, as by httpx's own backend.
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await _lines(f"https://localhost:{port}/v1", asyncio_transport())


async def test_a_compressed_stream_is_decoded_event_by_event():
    timeouts = Timeouts(connect=2, first_token=5, between_tokens=5, total=30)
    async with sse_server(events=30, gzip=True) as port:
        endpoint = bearer_endpoint(f"http://127.0.0.1:{port}", "k", timeouts=timeouts)
        async with open_stream(endpoint, "/v1", {}, map_error=lambda *a: None) as response:  # type: ignore[arg-type,return-value]
            payloads = [
                payload
                async for payload in json_payloads(response, timeouts, finished=lambda: False)
            ]
    assert [payload["n"] for payload in payloads] == list(range(30))
    assert payloads[7]["text"] == "é7"


async def test_a_refused_connection_is_a_connect_error():
    async with sse_server() as port:
        pass  # closed: nothing listens on the port any more
    with pytest.raises(httpx.ConnectError):
        await _lines(f"http://127.0.0.1:{port}/v1", asyncio_transport())


async def test_a_stalled_read_times_out_with_httpx_read_timeout():
    async with sse_server(events=10, stall_after=3) as port:
        timeout = httpx.Timeout(5, read=0.3)
        async with (
            httpx.AsyncClient(transport=asyncio_transport(), timeout=timeout) as client,
            client.stream("POST", f"http://127.0.0.1:{port}/v1") as response,
        ):
            started = asyncio.get_running_loop().time()
            with pytest.raises(httpx.ReadTimeout):
                async for _ in response.aiter_bytes():
                    pass
            assert asyncio.get_running_loop().time() - started < 2


async def test_silence_mid_stream_names_the_idle_budget_even_while_the_reader_is_busy():
    """Silence counts from the start of each wait: a consumer busy for longer than the
    budget between two events gets the next one, and the upstream's real silence after
    it is still caught."""
    timeouts = Timeouts(connect=2, first_token=5, between_tokens=0.2, total=30)
    async with sse_server(events=10, stall_after=2) as port:
        endpoint = bearer_endpoint(f"http://127.0.0.1:{port}", "k", timeouts=timeouts)
        seen = []
        async with open_stream(endpoint, "/v1", {}, map_error=lambda *a: None) as response:  # type: ignore[arg-type,return-value]
            from providers.clients.errors import UpstreamTimeoutError

            with pytest.raises(UpstreamTimeoutError, match="went silent"):
                async for event in sse_events(response, timeouts):
                    seen.append(event.data)
                    # Busy (not awaiting the stream) past the budget: not cancelled here.
                    await asyncio.sleep(0.3 if len(seen) == 1 else 0)
    assert len(seen) == 2


async def test_stopping_a_reader_is_a_cancellation_not_a_timeout():
    timeouts = Timeouts(connect=2, first_token=5, between_tokens=5, total=30)
    async with sse_server(events=10, stall_after=2) as port:
        endpoint = bearer_endpoint(f"http://127.0.0.1:{port}", "k", timeouts=timeouts)

        async def read() -> None:
            async with open_stream(endpoint, "/v1", {}, map_error=lambda *a: None) as response:  # type: ignore[arg-type,return-value]
                async for _ in sse_events(response, timeouts):
                    pass

        task = asyncio.create_task(read())
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_the_guarded_transport_still_refuses_loopback():
    async with sse_server() as port:
        with pytest.raises(httpx.ConnectError, match="non-public"):
            await _lines(f"http://127.0.0.1:{port}/v1", GuardedTransport())


def _head_lines(head: bytes) -> tuple[bytes, dict[bytes, bytes]]:
    """A request head's first line, and its headers by lowercase name."""
    first, *lines = head.rstrip(b"\r\n").split(b"\r\n")
    return first, {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(b":") for line in lines)
    }


def test_a_body_is_the_json_an_httpx_client_would_have_sent():
    text = "".join(map(chr, range(0x250))) + "\u2028\u2029\ufeff 这是一个回答 😀 \U0010ffff"
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": text}, {"role": "assistant", "content": ""}],
        "temperature": 0.7,
        "top_p": 0.95,
        "max_tokens": 2048,
        "stream": True,
        "stop": None,
    }
    assert encode_body(body) == httpx.Request("POST", "http://x/", json=body).content


def test_a_body_orjson_refuses_is_encoded_or_refused_as_the_standard_library_does():
    body = {"seed": 2**70, "metadata": {1: "one"}}  # too big for orjson; a key not a string
    assert encode_body(body) == httpx.Request("POST", "http://x/", json=body).content
    with pytest.raises(UnicodeEncodeError):
        encode_body({"content": "a lone \ud800 surrogate"})


async def test_a_request_is_what_an_httpx_client_would_have_sent():
    timeouts = Timeouts(connect=2, first_token=5, between_tokens=5, total=30)
    body = {"model": "m", "messages": [{"role": "user", "content": "é \u2028 <b>"}]}
    received: list[tuple[bytes, bytes]] = []
    async with sse_server(events=3, received=received) as port:
        base = f"http://127.0.0.1:{port}/api/v1/"
        endpoint = bearer_endpoint(base, "sk-test", timeouts=timeouts, extra_headers={"X-A": "b"})
        async with open_stream(
            endpoint, "/chat", body, map_error=lambda *a: None, extra_headers={"X-C": "d"}
        ) as response:  # type: ignore[arg-type,return-value]
            await response.aread()
        async with httpx.AsyncClient(base_url=base, headers={"X-A": "b"}) as client:
            expected = client.build_request(
                "POST",
                "/chat",
                json=body,
                headers={"Authorization": "Bearer sk-test", "X-C": "d"},
            )

    ((head, sent_body),) = received
    first, headers = _head_lines(head)
    assert first == b"POST /api/v1/chat HTTP/1.1"
    assert headers == {name.lower(): value for name, value in expected.headers.raw}
    assert headers[b"user-agent"].startswith(b"python-httpx/")
    assert sent_body == expected.content  # the same JSON, byte for byte
    assert json.loads(sent_body) == body
