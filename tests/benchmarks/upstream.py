"""What starting and reading upstream streams cost this process, for each API.

    make bench-upstream
    python -m tests.benchmarks.upstream --streams 50 --tokens 300 --pace 100

The simulator runs in its own process and writes one SSE chunk per token at the set
pace, as the real APIs do. This process runs the real wire clients (no Django), N
streams at once, and reports the CPU it spent (user + system, all threads) per chunk
it turned into events: the cost the relay pays for every token before it publishes
anything. The simulator's own CPU is not counted.

It also reports the CPU to start a request: N requests at once over connections kept
between requests, as the relay keeps them (``SharedPool``), each until its first event
(building and writing the request, reading the response head and the first chunk).
That is what a burst of sends costs the event loop before anyone sees a word.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import AsyncGenerator
from pathlib import Path

import httpx

from providers.clients.cloudflare import CloudflareClient
from providers.clients.cloudsway import CloudswayClient
from providers.clients.dashscope import DashScopeClient
from providers.clients.h1 import asyncio_transport
from providers.clients.http import SharedPool
from providers.clients.minimax_anthropic import MiniMaxAnthropicClient
from providers.clients.minimax_openai import MiniMaxOpenAIClient
from providers.clients.types import (
    ChatClient,
    ChatMessage,
    ChatRequest,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
)
from tests.live import simulator_process


def clients(
    url: str, headers: dict[str, str], transport: httpx.AsyncBaseTransport | None = None
) -> list[tuple[str, ChatClient, str]]:
    return [
        (
            "MiniMax (OpenAI-compatible)",
            MiniMaxOpenAIClient(
                base_url=f"{url}/minimax/v1",
                api_key="bench",
                extra_headers=headers,
                transport=transport,
            ),
            "MiniMax-M2.7",
        ),
        (
            "MiniMax (Anthropic-compatible)",
            MiniMaxAnthropicClient(
                base_url=f"{url}/minimax/anthropic",
                api_key="bench",
                extra_headers=headers,
                transport=transport,
            ),
            "MiniMax-M2.7",
        ),
        (
            "Cloudflare Workers AI",
            CloudflareClient(
                api_token="bench",
                account_id="bench",
                base_url=f"{url}/cloudflare/client/v4",
                extra_headers=headers,
                transport=transport,
            ),
            "minimax/m2.7",
        ),
        (
            "DashScope",
            DashScopeClient(
                api_key="bench",
                base_url=f"{url}/dashscope/api/v1",
                extra_headers=headers,
                transport=transport,
            ),
            "abab6.5s-chat",
        ),
        (
            "Cloudsway",
            CloudswayClient(
                api_key="bench",
                base_url=f"{url}/cloudsway/v1/ai",
                endpoint_path="bench",
                extra_headers=headers,
                transport=transport,
            ),
            "MiniMax-M2.7",
        ),
    ]


async def one_stream(client: ChatClient, model: str, index: int) -> int:
    request = ChatRequest(
        model=model, messages=(ChatMessage(role="user", content=f"bench stream {index}"),)
    )
    chunks = 0
    async for event in client.stream(request):
        if isinstance(event, (TextDelta, ReasoningDelta)):
            chunks += 1
    return chunks


async def measure(client: ChatClient, model: str, streams: int) -> tuple[int, float, float]:
    cpu, wall = time.process_time(), time.monotonic()
    counts = await asyncio.gather(*(one_stream(client, model, i) for i in range(streams)))
    return sum(counts), time.process_time() - cpu, time.monotonic() - wall


async def first_event(
    client: ChatClient, model: str, index: int
) -> AsyncGenerator[StreamEvent, None]:
    """A stream whose first text (or reasoning) has arrived, left open."""
    request = ChatRequest(
        model=model, messages=(ChatMessage(role="user", content=f"bench start {index}"),)
    )
    stream = client.stream(request)
    async for event in stream:
        if isinstance(event, (TextDelta, ReasoningDelta)):
            break
    return stream


async def measure_starts(
    refill: ChatClient, slow: ChatClient, model: str, streams: int, rounds: int
) -> float:
    """CPU seconds to start a request and read its first event, ``streams`` at once,
    over kept connections. ``refill`` (quick, read to the end) fills the pool before
    each round; ``slow`` sends its second token long after its first, so each round
    counts the starts, the response heads and the first events, and nothing else."""
    spent = 0.0
    for _ in range(rounds):
        await asyncio.gather(*(one_stream(refill, model, i) for i in range(streams)))
        cpu = time.process_time()
        started = await asyncio.gather(*(first_event(slow, model, i) for i in range(streams)))
        spent += time.process_time() - cpu
        await asyncio.gather(*(stream.aclose() for stream in started))
    return spent / (streams * rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--pace", type=float, default=100.0, help="tokens per second")
    args = parser.parse_args()
    headers = {"x-simulator-pace": str(args.pace), "x-simulator-length": str(args.tokens)}
    print(
        f"{args.streams} streams at once, {args.tokens} tokens each at {args.pace:g} tok/s, "
        f"{os.cpu_count()} cores"
    )
    print(
        "| API | chunks | CPU per chunk (µs) | CPU while streaming | CPU to start a request (µs) |"
    )
    print("|---|---|---|---|---|")
    pool = SharedPool(lambda keepalive: asyncio_transport(keepalive=keepalive), keepalive=30)
    quick = {**headers, "x-simulator-pace": "1000", "x-simulator-length": "1"}
    slow = {**headers, "x-simulator-pace": "1"}
    with (
        tempfile.TemporaryDirectory() as tmp,
        simulator_process(args.pace, Path(tmp) / "simulator.log") as url,
    ):
        for (label, client, model), (_, refill, _), (_, starter, _) in zip(
            clients(url, headers), clients(url, quick, pool), clients(url, slow, pool), strict=True
        ):
            asyncio.run(measure(client, model, 2))  # warm: imports, first connections
            chunks, cpu, wall = asyncio.run(measure(client, model, args.streams))
            per_request = asyncio.run(
                measure_starts(refill, starter, model, args.streams, rounds=5)
            )
            print(
                f"| {label} | {chunks} | {cpu / max(chunks, 1) * 1e6:.0f} "
                f"| {100 * cpu / wall:.0f} % | {per_request * 1e6:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
