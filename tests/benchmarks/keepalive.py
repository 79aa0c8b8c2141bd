"""What keeping upstream connections saves a reply: one after another, over TLS.

    make bench-keepalive
    python -m tests.benchmarks.keepalive --replies 40

The simulator serves HTTPS on loopback with a throwaway certificate, in this process.
The MiniMax client asks for one reply after another, first opening a connection for
each (as every reply did before ``SharedPool``), then through a ``SharedPool``. It
prints each way's time to the first token and this process's CPU per reply (the
simulator's included: both ends of each TLS handshake run here).

On loopback a round trip costs next to nothing, so the difference is the handshakes'
CPU. Over a network, each connection a reply does not open also saves the round trips
of TCP and TLS (and DNS) before the upstream sees the request: two or three times the
distance to the API.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import statistics
import tempfile
import time
from pathlib import Path

from providers.clients.h1 import asyncio_transport
from providers.clients.http import SharedPool
from providers.clients.minimax_openai import MiniMaxOpenAIClient
from providers.clients.types import ChatMessage, ChatRequest, ReasoningDelta, TextDelta
from providers.simulator import Simulator
from tests.live import self_signed_certificate

REQUEST = ChatRequest(model="MiniMax-M2.7", messages=(ChatMessage(role="user", content="Hello"),))


async def one_reply(client: MiniMaxOpenAIClient) -> float:
    """Seconds to the first token; the reply is read to its end."""
    started = time.perf_counter()
    first = None
    async for event in client.stream(REQUEST):
        if first is None and isinstance(event, (ReasoningDelta, TextDelta)):
            first = time.perf_counter() - started
    assert first is not None
    return first


async def run(replies: int) -> None:
    directory = Path(tempfile.mkdtemp(prefix="parley-keepalive-"))
    cert, key = self_signed_certificate(directory)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    client_tls = ssl.create_default_context(cafile=str(cert))

    simulator = Simulator(tokens_per_second=2000)
    url = await simulator.start(host="localhost", tls=server_tls)
    pool = SharedPool(
        lambda keepalive: asyncio_transport(verify=client_tls, keepalive=keepalive), keepalive=30.0
    )

    def client(transport: object) -> MiniMaxOpenAIClient:
        return MiniMaxOpenAIClient(
            base_url=f"{url}/minimax/v1",
            api_key="bench",
            transport=transport,  # type: ignore[arg-type]
            extra_headers={"x-simulator-length": "20"},
        )

    print(f"{replies} replies one after another, HTTPS on loopback, 20 tokens each")
    print("| connections | first token p50 / p90 (ms) | CPU per reply (ms) | connections opened |")
    print("|---|---|---|---|")
    for label, make in (
        ("one per reply", lambda: client(asyncio_transport(verify=client_tls))),
        ("kept (SharedPool)", lambda: client(pool)),
    ):
        await one_reply(make())  # warm: imports, the first connection of the pool
        simulator.requests.clear()
        firsts = []
        cpu = time.process_time()
        for _ in range(replies):
            firsts.append(await one_reply(make()))
        cpu = time.process_time() - cpu
        opened = len({request.connection for request in simulator.requests})
        deciles = statistics.quantiles(firsts, n=10)
        print(
            f"| {label} | {statistics.median(firsts) * 1000:.2f} / {deciles[-1] * 1000:.2f} "
            f"| {cpu / replies * 1000:.2f} | {opened} |"
        )
    await pool.close()
    await simulator.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replies", type=int, default=40)
    args = parser.parse_args()
    asyncio.run(run(args.replies))


if __name__ == "__main__":
    main()
