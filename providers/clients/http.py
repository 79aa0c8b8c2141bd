"""The one place upstream HTTP happens: requests, timeouts, status mapping.

Tests inject an ``httpx`` transport or point ``base_url`` at the loopback simulator;
nothing patches library internals.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import httpx
import orjson

from providers.clients.errors import (
    ProviderError,
    UpstreamConnectionError,
    UpstreamTimeoutError,
    gettext_noop,
    redact,
)
from providers.clients.h1 import H1Transport, asyncio_transport
from providers.clients.sse import ServerSentEvent, aiter_sse

logger = logging.getLogger("providers")


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Separate budgets, in seconds, for each way an upstream can stall."""

    connect: float = 10.0
    first_token: float = 60.0
    between_tokens: float = 60.0
    total: float = 600.0


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how to reach one upstream API. ``secrets`` are redacted from errors."""

    base_url: str
    headers: Mapping[str, str]
    secrets: tuple[str, ...] = ()
    timeouts: Timeouts = Timeouts()
    transport: httpx.AsyncBaseTransport | None = None


def bearer_endpoint(
    base_url: str,
    api_key: str,
    *,
    timeouts: Timeouts | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    headers: Mapping[str, str] | None = None,
    extra_headers: Mapping[str, str] | None = None,
) -> Endpoint:
    """An endpoint that authenticates with ``Authorization: Bearer`` (every API here)."""
    return Endpoint(
        base_url=base_url.rstrip("/"),
        headers={"Authorization": f"Bearer {api_key}", **(headers or {}), **(extra_headers or {})},
        secrets=(api_key,),
        timeouts=timeouts or Timeouts(),
        transport=transport,
    )


ErrorMapper = Callable[[int, Any, Mapping[str, str]], ProviderError]

#: Idle connections kept per event loop (each is a socket, perhaps a TLS session).
MAX_IDLE_CONNECTIONS = 200

_Origin = tuple[bytes, bytes, int | None]


class SharedPool(httpx.AsyncBaseTransport):
    """Upstream connections kept open between requests, per event loop.

    A reply that opens its own connection pays for DNS, TCP and TLS before the upstream
    even sees the request: two or three round trips to a distant API. This transport
    keeps each connection, once its response has been read to the end, for the next
    request to the same origin, for up to ``keepalive`` seconds, LIFO (the most recent
    is the likeliest to be alive; ``H1Transport`` checks it has not been closed before
    using it). A connection left mid-answer (Stop, an error, a timeout) is closed,
    which is how the upstream learns to stop. There is no cap on connections in use:
    each streaming reply holds one for its whole life, and a cap would make the next
    reply wait for one to end; at most ``MAX_IDLE_CONNECTIONS`` idle ones are kept.

    Each connection is a transport of its own (``build``, an ``H1Transport``):
    httpcore's pool, used before, scanned all its connections for every request and
    response, and checked each idle one against a count of all of them, which at 150
    streams cost more than the relay itself. ``open_stream`` closes its transport
    after each request: closing this one that way does nothing; ``close()`` closes
    the running loop's idle connections (at shutdown).
    """

    def __init__(self, build: Callable[[float], H1Transport], *, keepalive: float) -> None:
        self._build = build
        self.keepalive = keepalive
        self._idle: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[_Origin, list[tuple[float, H1Transport]]]
        ] = weakref.WeakKeyDictionary()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        loop = asyncio.get_running_loop()
        origin = (request.url.raw_scheme, request.url.raw_host, request.url.port)
        kept = self._idle.setdefault(loop, {}).get(origin)
        transport = None
        while kept and transport is None:
            since, candidate = kept.pop()
            if loop.time() - since < self.keepalive:
                transport = candidate
            else:
                await candidate.aclose()
        if transport is None:
            transport = self._build(self.keepalive)
        try:
            response = await transport.handle_async_request(request)
        except BaseException:
            await transport.aclose()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _GivenBack(response.stream, self, origin, transport)
        return response

    async def _give_back(self, origin: _Origin, transport: H1Transport) -> None:
        loop = asyncio.get_running_loop()
        idle = self._idle.setdefault(loop, {})
        if (
            transport.has_idle_connection()
            and sum(len(kept) for kept in idle.values()) < MAX_IDLE_CONNECTIONS
        ):
            idle.setdefault(origin, []).append((loop.time(), transport))
        else:
            await transport.aclose()

    async def aclose(self) -> None:
        """A request is done with it: the connections stay for the next."""

    async def close(self) -> None:
        """Close the running loop's idle connections."""
        idle = self._idle.pop(asyncio.get_running_loop(), {})
        for kept in idle.values():
            for _, transport in kept:
                await transport.aclose()


class _GivenBack(httpx.AsyncByteStream):
    """A response body whose connection goes back to its ``SharedPool`` once closed."""

    def __init__(
        self,
        stream: httpx.AsyncByteStream,
        pool: SharedPool,
        origin: _Origin,
        transport: H1Transport,
    ) -> None:
        self._stream = stream
        self._pool = pool
        self._origin = origin
        self._transport: H1Transport | None = transport

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._stream.__aiter__()  # no layer of ours per chunk

    async def aclose(self) -> None:
        await self._stream.aclose()
        transport, self._transport = self._transport, None
        if transport is not None:
            await self._pool._give_back(self._origin, transport)


@cache
def tls_context() -> ssl.SSLContext:
    # Building a context loads the CA bundle (~40 ms): do it once per process, not per reply.
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


def decode_json(raw: bytes | str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


@cache
def _default_headers() -> httpx.Headers:
    """The headers an ``httpx`` client sends with every request (``Accept``,
    ``Accept-Encoding`` for the decoders installed, ``User-Agent``...)."""
    unused = httpx.MockTransport(lambda request: httpx.Response(500))
    return httpx.AsyncClient(transport=unused, trust_env=False).headers


@lru_cache(maxsize=256)
def _url(base_url: str, path: str) -> httpx.URL:
    return httpx.URL(f"{base_url}/{path.lstrip('/')}")


def encode_body(body: Mapping[str, Any]) -> bytes:
    """``body`` as the compact UTF-8 JSON an ``httpx`` client sends for ``json=body``.

    With orjson, not the standard library: a request carries the conversation's whole
    history, and for text that is not ASCII ``json.dumps`` and the UTF-8 encoding of its
    result took half a millisecond per 100,000 characters, on the event loop, for every
    send (orjson: 30 µs). The bytes are the same but for two things no upstream reads
    differently: floats under 1e-4 are written ``1e-7`` rather than ``1e-07``, and a NaN
    (which nothing here sends: limits are checked first) becomes ``null`` instead of an
    error. What orjson refuses (an integer over 64 bits, a key that is not a string, a
    lone surrogate) the standard library encodes, or refuses, as before.
    """
    try:
        return orjson.dumps(body)
    except TypeError:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _post(
    endpoint: Endpoint, path: str, body: Mapping[str, Any], headers: Mapping[str, str]
) -> httpx.Request:
    """The request an ``httpx`` client with ``endpoint``'s base URL and timeouts would
    build for this POST (``json=body``)."""
    timeouts = endpoint.timeouts
    timeout = httpx.Timeout(
        connect=timeouts.connect,
        read=max(timeouts.first_token, timeouts.between_tokens),
        write=timeouts.connect,
        pool=timeouts.connect,
    )
    merged = httpx.Headers(_default_headers())
    merged.update(headers)
    if "content-type" not in merged:
        merged["Content-Type"] = "application/json"
    return httpx.Request(
        "POST",
        _url(endpoint.base_url, path),
        headers=merged,
        content=encode_body(body),
        extensions={"timeout": timeout.as_dict()},
    )


@asynccontextmanager
async def _transport(endpoint: Endpoint) -> AsyncIterator[httpx.AsyncBaseTransport]:
    """The endpoint's transport (a new one when it has none), closed after the request."""
    transport = endpoint.transport or asyncio_transport(verify=tls_context())
    try:
        yield transport
    finally:
        await transport.aclose()


async def _send(transport: httpx.AsyncBaseTransport, request: httpx.Request) -> httpx.Response:
    """Straight to the transport, as an ``httpx`` client given a transport sends (it
    ignores proxy variables then too): a client made per request cost more of the event
    loop than writing the request did (reading the environment, parsing and merging
    URLs, a cookie jar), a third of what starting a reply cost when fifty started at
    once."""
    response = await transport.handle_async_request(request)
    response.request = request
    return response


@asynccontextmanager
async def open_stream(
    endpoint: Endpoint,
    path: str,
    body: Mapping[str, Any],
    *,
    map_error: ErrorMapper,
    extra_headers: Mapping[str, str] | None = None,
) -> AsyncIterator[httpx.Response]:
    """POST ``body`` and yield the streaming response once its status is OK.

    A non-2xx status is read, mapped through ``map_error`` and raised. Leaving the
    context (normally, by error or by cancellation) closes the connection.
    """
    timeouts = endpoint.timeouts
    headers = {**endpoint.headers, **(extra_headers or {})}
    async with _transport(endpoint) as transport:
        try:
            request = _post(endpoint, path, body, headers)
            # Waiting for the response head is waiting for the first token.
            async with asyncio.timeout(timeouts.first_token):
                response = await _send(transport, request)
        except TimeoutError:
            raise UpstreamTimeoutError(first_token_timeout(timeouts)) from None
        except httpx.ConnectTimeout:
            raise UpstreamTimeoutError(connect_timeout(timeouts)) from None
        except httpx.TimeoutException:
            raise UpstreamTimeoutError(first_token_timeout(timeouts)) from None
        except httpx.HTTPError as exc:
            # One sentence for every way of not getting there (refused, reset, DNS, a
            # blocked address): the difference would map a private network for a user.
            _log_failure(exc, endpoint)
            raise UpstreamConnectionError(UNREACHABLE) from None
        try:
            if response.status_code >= 400:
                raw = await response.aread()
                raise map_error(response.status_code, decode_json(raw), response.headers)
            yield response
            await _read_to_the_end(response)
        except ProviderError as error:
            # The one way out for every mapped error of every API: no secret of this
            # endpoint leaves in its text, whatever the upstream echoed.
            error.message = redact(error.message, endpoint.secrets)
            error.args = (error.message,)
            raise
        except httpx.TimeoutException as exc:
            _log_failure(exc, endpoint)
            raise UpstreamTimeoutError(idle_timeout(timeouts)) from None
        except httpx.HTTPError as exc:
            _log_failure(exc, endpoint)
            raise UpstreamConnectionError(BROKE_OFF) from None
        finally:
            await response.aclose()


#: How long the end of a body may take to arrive once its reader has what it needs.
END_OF_BODY_GRACE = 0.1

# Each streaming response's body iterator, for ``_read_to_the_end``.
_bodies: weakref.WeakKeyDictionary[httpx.Response, AsyncIterator[bytes]] = (
    weakref.WeakKeyDictionary()
)


def _body(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body's chunks: as they came when not compressed (one layer of iteration less
    per chunk), else decompressed."""
    if response.headers.get("content-encoding", "identity").strip().lower() == "identity":
        body = response.aiter_raw()
    else:
        body = response.aiter_bytes()
    _bodies[response] = body
    return body


async def _read_to_the_end(response: httpx.Response) -> None:
    """Read what is left of a body whose reader stopped at the answer's last event
    (``[DONE]`` comes just before the end of the body), so that its connection can
    carry the next request. A body that does not end within ``END_OF_BODY_GRACE`` is
    left, and its connection closed."""
    body = _bodies.pop(response, None)
    if body is None or response.is_closed:
        return
    try:
        async with asyncio.timeout(END_OF_BODY_GRACE):
            async for _ in body:
                pass
    except (TimeoutError, httpx.HTTPError):
        pass  # not reusable: closed with the response


class _Budgets:
    """The first-token, silence and total budgets of one stream.

    One timer enforces them, re-armed only when it fires early: a timer per event (one
    per token) was a good part of what reading a stream cost. Silence counts from the
    start of each wait, as it did with a timeout per wait: a consumer busy between
    events is not the upstream going silent. When a budget runs out during a wait, the
    reading task is cancelled and the cancellation becomes the timeout, as
    ``asyncio.timeout`` does.
    """

    def __init__(self, timeouts: Timeouts, produced: Callable[[], bool] | None) -> None:
        self.loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self.timeouts = timeouts
        self.produced = produced
        start = self.loop.time()
        self.first_deadline = start + timeouts.first_token
        self.total_deadline = start + timeouts.total
        self.wait_started = start
        self.seen_event = False
        self.waiting_first = True
        self.reading = False
        self.expired: str | None = None
        self._cancelling = task.cancelling()
        self._timer: asyncio.TimerHandle | None = None

    def _still_first(self) -> bool:
        return not self.produced() if self.produced is not None else not self.seen_event

    def _limit(self) -> tuple[float, Callable[[Timeouts], str]]:
        # Name the budget that runs out first, so the message says what happened.
        if self.waiting_first:
            limit, reason = self.first_deadline, first_token_timeout
        else:
            limit, reason = self.wait_started + self.timeouts.between_tokens, idle_timeout
        if self.total_deadline <= limit:
            return self.total_deadline, total_timeout
        return limit, reason

    def _check(self) -> None:
        self._timer = None
        if not self.reading:
            return  # the consumer is busy, not the upstream silent: the next read re-arms
        limit, reason = self._limit()
        if self.loop.time() < limit:
            self._timer = self.loop.call_at(limit, self._check)
            return
        self.expired = reason(self.timeouts)
        self.task.cancel()

    async def next(self, events: AsyncIterator[ServerSentEvent]) -> ServerSentEvent:
        self.wait_started = self.loop.time()
        if self.waiting_first and not self._still_first():
            # The silence budget (usually shorter) starts counting: re-arm for it.
            self.waiting_first = False
            self.close()
        if self._timer is None:
            limit, reason = self._limit()
            if self.loop.time() >= limit:
                raise UpstreamTimeoutError(reason(self.timeouts))
            self._timer = self.loop.call_at(limit, self._check)
        self.reading = True
        try:
            event = await anext(events)
        except asyncio.CancelledError:
            if self.expired is not None and self.task.uncancel() <= self._cancelling:
                raise UpstreamTimeoutError(self.expired) from None
            raise
        finally:
            self.reading = False
        self.seen_event = True
        return event

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


async def sse_events(
    response: httpx.Response,
    timeouts: Timeouts,
    *,
    produced: Callable[[], bool] | None = None,
) -> AsyncGenerator[ServerSentEvent, None]:
    """Decode SSE from a response, enforcing the first-token, silence and total budgets.

    ``produced`` tells when the first real token arrived: APIs send a role chunk or a
    ``message_start`` at once and may think long after it, so until then the (usually
    longer) first-token budget applies, counted from the start.
    """
    budgets = _Budgets(timeouts, produced)
    events = aiter_sse(_body(response))
    try:
        while True:
            try:
                event = await budgets.next(events)
            except StopAsyncIteration:
                return
            yield event
    finally:
        budgets.close()
        await events.aclose()


CONNECT_TIMEOUT = gettext_noop("Could not connect to the provider within {seconds} s.")
FIRST_TOKEN_TIMEOUT = gettext_noop("The provider did not start answering within {seconds} s.")
IDLE_TIMEOUT = gettext_noop("The provider went silent mid-reply (nothing for {seconds} s).")


def connect_timeout(timeouts: Timeouts) -> str:
    return CONNECT_TIMEOUT.format(seconds=f"{timeouts.connect:g}")


def first_token_timeout(timeouts: Timeouts) -> str:
    return FIRST_TOKEN_TIMEOUT.format(seconds=f"{timeouts.first_token:g}")


def idle_timeout(timeouts: Timeouts) -> str:
    return IDLE_TIMEOUT.format(seconds=f"{timeouts.between_tokens:g}")


def total_timeout(timeouts: Timeouts) -> str:
    return f"The reply took longer than the {timeouts.total:g} s allowed in total."


UNREACHABLE = gettext_noop("Could not reach the provider.")
BROKE_OFF = gettext_noop("The connection to the provider broke off mid-reply.")


def _log_failure(exc: httpx.HTTPError, endpoint: Endpoint) -> None:
    """The detail is for the operator's log, never for the user's page."""
    detail = redact(str(exc) or type(exc).__name__, endpoint.secrets)
    logger.warning("Upstream connection failed: %s: %s", type(exc).__name__, detail)


async def json_payloads(
    response: httpx.Response,
    timeouts: Timeouts,
    *,
    finished: Callable[[], bool],
    grace: float = 2.0,
    produced: Callable[[], bool] | None = None,
) -> AsyncGenerator[Any, None]:
    """Yield each ``data:`` payload decoded from JSON (``None`` for a malformed one).

    Stops at ``[DONE]``, at EOF, or ``grace`` seconds after ``finished()`` turns true:
    some upstreams keep the stream open after their last chunk. (``sse_events`` with the
    JSON on top, in one generator: each layer costs every token.)
    """
    budgets = _Budgets(timeouts, produced)
    events = aiter_sse(_body(response))
    try:
        while True:
            try:
                if finished():
                    async with asyncio.timeout(grace):
                        event = await budgets.next(events)
                else:
                    event = await budgets.next(events)
            except (StopAsyncIteration, TimeoutError):
                return
            if not event.data:
                continue  # comments, pings, keep-alives
            if event.data.strip() == "[DONE]":
                return
            yield decode_json(event.data)
    finally:
        budgets.close()
        await events.aclose()
