"""What reading an upstream stream costs this process, per chunk, for each API.

    make bench-upstream
    python -m tests.benchmarks.upstream --streams 50 --tokens 300 --pace 100

The simulator runs in its own process and writes one SSE chunk per token at the set
pace, as the real APIs do. This process runs the real wire clients (no Django), N
streams at once, and reports the CPU it spent (user + system, all threads) per chunk
it turned into events: the cost the relay pays for every token before it publishes
anything. The simulator's own CPU is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from providers.clients.cloudflare import CloudflareClient
from providers.clients.cloudsway import CloudswayClient
from providers.clients.dashscope import DashScopeClient
from providers.clients.minimax_anthropic import MiniMaxAnthropicClient
from providers.clients.minimax_openai import MiniMaxOpenAIClient
from providers.clients.types import (
    ChatClient,
    ChatMessage,
    ChatRequest,
    ReasoningDelta,
    TextDelta,
)
from tests.live import simulator_process


def clients(url: str, headers: dict[str, str]) -> list[tuple[str, ChatClient, str]]:
    return [
        (
            "MiniMax (OpenAI-compatible)",
            MiniMaxOpenAIClient(
                base_url=f"{url}/minimax/v1", api_key="bench", extra_headers=headers
            ),
            "MiniMax-M2.7",
        ),
        (
            "MiniMax (Anthropic-compatible)",
            MiniMaxAnthropicClient(
                base_url=f"{url}/minimax/anthropic", api_key="bench", extra_headers=headers
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
            ),
            "minimax/m2.7",
        ),
        (
            "DashScope",
            DashScopeClient(
                api_key="bench", base_url=f"{url}/dashscope/api/v1", extra_headers=headers
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
    print("| API | chunks | CPU per chunk (µs) | CPU while streaming |")
    print("|---|---|---|---|")
    with (
        tempfile.TemporaryDirectory() as tmp,
        simulator_process(args.pace, Path(tmp) / "simulator.log") as url,
    ):
        for label, client, model in clients(url, headers):
            asyncio.run(measure(client, model, 2))  # warm: imports, first connections
            chunks, cpu, wall = asyncio.run(measure(client, model, args.streams))
            print(
                f"| {label} | {chunks} | {cpu / max(chunks, 1) * 1e6:.0f} "
                f"| {100 * cpu / wall:.0f} % |",
                flush=True,
            )


if __name__ == "__main__":
    main()
