"""A small asyncio HTTP/1.1 server that plays the upstream APIs over loopback.

Directives ride in request headers, so the real clients need no special code:

- ``x-simulator-pace``: tokens per second (default: the server's setting);
- ``x-simulator-length``: pad the answer to about this many tokens;
- ``x-simulator-quirks``: ``all`` or a comma-separated list of the quirks in
  PROTOCOLS.md, named in each wire module (e.g. ``split-think,no-done``);
- ``x-simulator-fault``: comma-separated faults, e.g. ``status=429,retry-after=2``,
  ``break-after=5`` (drop the connection after 5 tokens), ``silence-after=5`` (stop
  sending but keep the connection open), ``malformed-after=3`` (send a broken chunk),
  ``base-resp=1004`` (MiniMax's HTTP 200 error shape), ``pause-after=5,pause-seconds=10``
  (stall, then go on), ``no-headers`` (never answer), ``chunk-chars=65536`` (big chunks)
  ``pace=N`` (tokens per second, for this request), ``echo-key`` (error bodies quote
  the request's credentials, as some upstreams do) and ``ignore-max-tokens`` (send the
  whole padded answer whatever output limit the request set, as a misbehaving upstream
  might).

Connections are kept for the next request, as the real APIs keep them: an answer
streams in chunked encoding and ends with the last chunk. A request that brings faults
(in its headers or queued), asks for ``Connection: close`` or speaks HTTP/1.0 gets the
old way instead: the body runs until the connection closes, so a fault can end it
anywhere.

Tests may also queue faults with :meth:`Simulator.queue_fault` (or, from another
process, ``POST /_faults`` with ``{"fault": "status=500"}``); every request is
recorded in :attr:`Simulator.requests` so a test can check what a client sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from providers.simulator import anthropic_wire, dashscope_wire, openai_wire
from providers.simulator.replies import max_output_tokens

MAX_BODY = 8 * 1024 * 1024


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    version: str = "HTTP/1.1"
    #: When the whole request had been read (wall clock, comparable across processes).
    received_at: float = field(default_factory=time.time)
    #: Which of the server's connections it came on (counted from 1).
    connection: int = 0
    disconnected_at: float | None = None
    finished: bool = False
    #: Everything written back, so tests can check a quirk really went over the wire.
    sent: list[str] = field(default_factory=list)
    #: When each item of ``sent`` was written (wall clock, comparable across processes).
    sent_at: list[float] = field(default_factory=list)

    @property
    def raw(self) -> str:
        return "".join(self.sent)


@dataclass
class Directives:
    pace: float
    length: int = 0
    faults: dict[str, str] = field(default_factory=dict)
    quirks: frozenset[str] = frozenset()
    #: Answer in chunked encoding and keep the connection for the next request.
    keep_alive: bool = False

    def output_limit(self, body: dict[str, Any]) -> int | None:
        """The output-token limit to honour: the request's, unless told to ignore it."""
        return None if "ignore-max-tokens" in self.faults else max_output_tokens(body)

    def fault_int(self, name: str) -> int | None:
        value = self.faults.get(name)
        return int(value) if value is not None and value.lstrip("-").isdigit() else None


class Exchange:
    """One request and the writer to answer it."""

    def __init__(
        self,
        record: RecordedRequest,
        directives: Directives,
        writer: asyncio.StreamWriter,
        disconnected: asyncio.Event,
    ) -> None:
        self.record = record
        self.directives = directives
        self.writer = writer
        self.disconnected = disconnected
        self.started = False
        self.broken = False
        self._chunked = False

    @property
    def body(self) -> dict[str, Any]:
        return self.record.body if isinstance(self.record.body, dict) else {}

    def quirk(self, name: str) -> bool:
        """Whether a quirk was asked for (``x-simulator-quirks: all`` or a list)."""
        quirks = self.directives.quirks
        return "all" in quirks or name in quirks

    async def respond_json(
        self, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> None:
        if status >= 400 and "echo-key" in self.directives.faults:
            payload = _echo_credentials(payload, self.record.headers)
        body = json.dumps(payload).encode()
        head = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        await self._head(status, {**head, **(headers or {})})
        self.record.sent.append(body.decode())
        self.record.sent_at.append(time.time())
        self.writer.write(body)
        await self.writer.drain()

    async def start_stream(self, headers: dict[str, str] | None = None) -> None:
        head = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        if self.directives.keep_alive:
            head["Transfer-Encoding"] = "chunked"
        await self._head(200, {**head, **(headers or {})})
        self._chunked = self.directives.keep_alive

    async def send(self, raw: str) -> None:
        if self.disconnected.is_set():
            raise ConnectionResetError("client went away")
        self.record.sent.append(raw)
        self.record.sent_at.append(time.time())
        data = raw.encode()
        if self._chunked:
            data = b"%x\r\n%b\r\n" % (len(data), data) if data else b""
        self.writer.write(data)
        await self.writer.drain()

    async def end(self) -> bool:
        """Finish the response; whether the connection may carry another request."""
        if not self.started or self.broken or not self.directives.keep_alive:
            return False
        if self._chunked:
            self.writer.write(b"0\r\n\r\n")
            await self.writer.drain()
        return True

    async def pause(self, tokens: int = 1) -> None:
        """Wait as long as ``tokens`` take at the requested pace, or until the client leaves."""
        await self.pause_for(tokens / self.directives.pace)

    async def pause_for(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self.disconnected.wait()
        if self.disconnected.is_set():
            raise ConnectionResetError("client went away")

    async def _head(self, status: int, headers: dict[str, str]) -> None:
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if not self.directives.keep_alive:
            lines.append("Connection: close")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self.writer.drain()
        self.started = True


Handler = Callable[[Exchange], Awaitable[None]]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    529: "Overloaded",
}


def _summary(record: RecordedRequest) -> dict[str, Any]:
    messages = record.body.get("messages") if isinstance(record.body, dict) else None
    last = messages[-1].get("content", "") if messages else ""
    return {
        "path": record.path,
        "last_message": last if isinstance(last, str) else "",
        "connection": record.connection,
        "received_at": record.received_at,
        "sent": list(zip(record.sent_at, record.sent, strict=True)),
    }


def _echo_credentials(payload: Any, headers: dict[str, str]) -> Any:
    """What a careless upstream does: quote the caller's credentials in its error."""
    credential = headers.get("authorization") or headers.get("x-api-key", "")
    if isinstance(payload, dict):
        return {key: _echo_credentials(value, headers) for key, value in payload.items()}
    if isinstance(payload, list):
        return [_echo_credentials(value, headers) for value in payload]
    if isinstance(payload, str) and payload:
        return f"invalid api key: {credential} (1004). {payload}"
    return payload


class Simulator:
    def __init__(self, *, tokens_per_second: float = 40.0, first_token_delay: float = 0.0) -> None:
        self.tokens_per_second = tokens_per_second
        #: Seconds before the first token of every answer that sets no pause of its own,
        #: as a real model takes to start (the relay benchmark's ``--upstream-ttft``).
        self.first_token_delay = first_token_delay
        self.requests: list[RecordedRequest] = []
        self._faults: deque[str] = deque()
        self._server: asyncio.base_events.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._connections = 0
        #: Connections open now, and how long a kept one waits for its next request.
        self.open_connections = 0
        self.idle_timeout = 75.0
        self.base_url = ""
        # Matched in order against the path; each API also has its own prefix, so the
        # demo can point every client at one simulator.
        self.routes: list[tuple[str, Handler]] = [
            ("/services/aigc/text-generation/generation", dashscope_wire.generation),
            ("/v1/messages", anthropic_wire.messages),
            ("/ai/run", openai_wire.cloudflare_run),
            ("/workers-ai/minimax/m2.7", openai_wire.cloudflare_run),
            ("/ai/v1/chat/completions", openai_wire.cloudflare_chat),
            ("/workers-ai/v1/chat/completions", openai_wire.cloudflare_chat),
            ("/chat/completions", openai_wire.chat_completions),
        ]

    def queue_fault(self, fault: str) -> None:
        """Apply ``fault`` (header syntax, ``length=N`` allowed too) to the next request
        that brings none of its own."""
        self._faults.append(fault)

    def clear_faults(self) -> None:
        self._faults.clear()

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, *, tls: ssl.SSLContext | None = None
    ) -> str:
        """Listen; with ``tls`` (a server context), over HTTPS."""
        self._server = await asyncio.start_server(self._handle, host, port, ssl=tls)
        bound = self._server.sockets[0].getsockname()
        self.base_url = f"{'https' if tls else 'http'}://{host}:{bound[1]}"
        return self.base_url

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        self._connections += 1
        self.open_connections += 1
        connection = self._connections
        try:
            kept = False
            while True:
                if kept:
                    # A kept connection waits this long for its next request, then the
                    # server closes it, as real servers do (nginx: 75 s).
                    try:
                        async with asyncio.timeout(self.idle_timeout):
                            record = await self._read_request(reader)
                    except TimeoutError:
                        return
                else:
                    record = await self._read_request(reader)
                if record is None:
                    return
                record.connection = connection
                self.requests.append(record)
                disconnected = asyncio.Event()
                watcher = asyncio.create_task(self._watch(reader, record, disconnected))
                exchange = Exchange(record, self._directives(record), writer, disconnected)
                try:
                    await self._dispatch(exchange)
                    record.finished = True
                except (ConnectionResetError, BrokenPipeError):
                    return
                finally:
                    # Before the response ends: the client sends its next request only
                    # once it has the whole of this one, so the watcher reads none of it.
                    watcher.cancel()
                    await asyncio.gather(watcher, return_exceptions=True)
                if disconnected.is_set() or not await exchange.end():
                    return
                kept = True
        except (asyncio.IncompleteReadError, ConnectionResetError, ValueError):
            pass
        except asyncio.CancelledError:
            pass  # the server is closing; this connection ends here
        finally:
            self.open_connections -= 1
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()

    async def _watch(
        self, reader: asyncio.StreamReader, record: RecordedRequest, event: asyncio.Event
    ) -> None:
        """Until the client goes away while it is being answered. (Bytes instead mean
        a request sent before this answer ended, which no client here does: the
        connection is then treated as gone.)"""
        with contextlib.suppress(Exception):
            await reader.read(65536)
        record.disconnected_at = time.monotonic()
        event.set()

    async def _read_request(self, reader: asyncio.StreamReader) -> RecordedRequest | None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if length > MAX_BODY:
            raise ValueError("body too large")
        raw = await reader.readexactly(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        return RecordedRequest(
            method=method,
            path=path.split("?", 1)[0],
            headers=headers,
            body=body,
            version=version.strip(),
        )

    def _directives(self, record: RecordedRequest) -> Directives:
        pace = self.tokens_per_second
        with contextlib.suppress(ValueError):
            pace = float(record.headers.get("x-simulator-pace", pace))
        length = record.headers.get("x-simulator-length", "0")
        raw_faults = record.headers.get("x-simulator-fault", "")
        if not raw_faults and self._faults and not record.path.startswith("/_"):
            raw_faults = self._faults.popleft()
        keep_alive = (
            not raw_faults
            and record.version == "HTTP/1.1"
            and record.headers.get("connection", "").lower() != "close"
        )
        faults = {}
        for item in raw_faults.split(","):
            name, _, value = item.strip().partition("=")
            if name:
                faults[name] = value
        if self.first_token_delay and "pause-after" not in faults:
            faults["pause-after"], faults["pause-seconds"] = "0", str(self.first_token_delay)
        length = faults.pop("length", length)  # a queued "length=500" pads the answer too
        with contextlib.suppress(ValueError):
            pace = float(faults.pop("pace", pace))
        quirks = frozenset(
            q.strip() for q in record.headers.get("x-simulator-quirks", "").split(",") if q.strip()
        )
        if "quirks" in faults:
            quirks |= frozenset(faults.pop("quirks").split("+"))
        return Directives(
            pace=max(pace, 0.1),
            length=int(length) if length.isdigit() else 0,
            faults=faults,
            quirks=quirks,
            keep_alive=keep_alive,
        )

    async def _dispatch(self, exchange: Exchange) -> None:
        if exchange.record.method == "GET" and exchange.record.path == "/_records":
            # For benchmarks in another process: what was sent, and when (then forgotten).
            self.requests.remove(exchange.record)
            done, self.requests = self.requests, []
            await exchange.respond_json(200, [_summary(r) for r in done])
            return
        if exchange.record.method == "POST" and exchange.record.path == "/_faults":
            # For browser tests against a server in another process: queue a fault.
            body = exchange.record.body
            fault = body.get("fault") if isinstance(body, dict) else None
            if not isinstance(fault, str) or not fault:
                await exchange.respond_json(400, {"error": 'send {"fault": "status=500"}'})
                return
            self.queue_fault(fault)
            await exchange.respond_json(200, {"queued": fault})
            return
        if "no-headers" in exchange.directives.faults:
            await exchange.disconnected.wait()  # accept the request, never answer it
            return
        if exchange.record.method != "POST":
            await exchange.respond_json(404, {"error": "not found"})
            return
        for suffix, handler in self.routes:
            if exchange.record.path.endswith(suffix):
                await handler(exchange)
                return
        await exchange.respond_json(404, {"error": f"no route for {exchange.record.path}"})


class _Background:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.simulator: Simulator | None = None


_background = _Background()


def background_simulator(*, tokens_per_second: float = 40.0) -> Simulator:
    """A process-wide simulator running on its own thread and event loop, started on first use."""
    with _background.lock:
        if _background.simulator is not None:
            return _background.simulator
        simulator = Simulator(tokens_per_second=tokens_per_second)
        ready = threading.Event()
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(simulator.start())
            ready.set()
            loop.run_forever()

        threading.Thread(target=run, name="parley-simulator", daemon=True).start()
        if not ready.wait(timeout=10):
            raise RuntimeError("the demo upstream did not start")
        _background.simulator = simulator
        return simulator


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Parley's offline demo upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--pace", type=float, default=40.0, help="tokens per second")
    parser.add_argument(
        "--first-token-delay", type=float, default=0.0, help="seconds before each first token"
    )
    args = parser.parse_args()

    async def serve() -> None:
        simulator = Simulator(tokens_per_second=args.pace, first_token_delay=args.first_token_delay)
        url = await simulator.start(args.host, args.port)
        print(f"Simulated upstream listening on {url}", flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
