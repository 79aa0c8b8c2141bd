"""Upstream connections kept between replies (``SharedPool``), against the simulator."""

from __future__ import annotations

import asyncio

import pytest

from providers.clients.base import gather
from providers.clients.h1 import asyncio_transport
from providers.clients.http import SharedPool, tls_context
from providers.clients.types import ChatMessage, ChatRequest, Finish, ReasoningDelta, TextDelta
from tests.providers.conftest import make_client

APIS = ["minimax", "anthropic", "cloudflare", "dashscope", "cloudsway"]


def _request(api: str) -> ChatRequest:
    model = {"cloudflare": "@cf/minimax/m2.7", "dashscope": "abab6.5s-chat"}.get(
        api, "MiniMax-M2.7"
    )
    return ChatRequest(model=model, messages=(ChatMessage(role="user", content="Hello"),))


def _pool(keepalive: float) -> SharedPool:
    return SharedPool(
        lambda keepalive: asyncio_transport(verify=tls_context(), keepalive=keepalive),
        keepalive=keepalive,
    )


@pytest.fixture
async def pool():
    shared = _pool(30.0)
    yield shared
    await shared.close()


async def _until(condition) -> None:  # type: ignore[no-untyped-def]
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not within 2 s")


@pytest.mark.parametrize("api", APIS)
async def test_one_reply_after_another_use_one_connection(sim, pool, api):
    client = make_client(sim, api, transport=pool)

    first = await gather(client.stream(_request(api)))
    second = await gather(client.stream(_request(api)))

    assert first.text and second.text == first.text
    assert [r.connection for r in sim.requests] == [1, 1]
    assert all(r.finished for r in sim.requests)


async def test_a_reply_left_mid_answer_closes_its_connection_and_the_next_opens_another(sim, pool):
    client = make_client(sim, "minimax", transport=pool, pace=200)
    stream = client.stream(_request("minimax"))
    async for event in stream:
        if isinstance(event, TextDelta):
            break
    await stream.aclose()  # as Stop does, by cancelling the reading task

    for _ in range(100):  # the simulator sees the connection go
        if sim.requests[0].disconnected_at is not None:
            break
        await asyncio.sleep(0.01)
    assert sim.requests[0].disconnected_at is not None
    assert not sim.requests[0].finished

    completion = await gather(client.stream(_request("minimax")))
    assert completion.finish.reason == "stop"
    assert sim.requests[1].connection == 2


async def test_an_answer_with_faults_is_not_followed_on_its_connection(sim, pool):
    # A fault may end the body anywhere: the simulator closes such connections.
    faulty = make_client(sim, "minimax", transport=pool, fault="pause-after=1,pause-seconds=0")
    plain = make_client(sim, "minimax", transport=pool)

    await gather(faulty.stream(_request("minimax")))
    await gather(plain.stream(_request("minimax")))

    assert [r.connection for r in sim.requests] == [1, 2]


async def test_simultaneous_replies_each_get_a_connection_and_none_waits_for_another(sim, pool):
    client = make_client(sim, "minimax", transport=pool, pace=50)
    firsts: list[float] = []
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def one() -> None:
        stream = client.stream(_request("minimax"))
        async for event in stream:
            if isinstance(event, (ReasoningDelta, TextDelta)):
                firsts.append(loop.time() - started)
                break
        await stream.aclose()

    await asyncio.gather(*(one() for _ in range(150)))

    assert len({r.connection for r in sim.requests}) == 150
    # At 50 tokens/s the first token is due after 20 ms: none waited for a reply to end.
    assert max(firsts) < 2.0


async def test_a_connection_the_upstream_closed_while_idle_is_not_used_again(sim, pool):
    client = make_client(sim, "minimax", transport=pool)
    await gather(client.stream(_request("minimax")))
    port = int(sim.base_url.rsplit(":", 1)[1])

    # The upstream restarts (or drops idle connections): the kept one is dead.
    await sim.close()
    await sim.start(port=port)
    completion = await gather(client.stream(_request("minimax")))

    assert completion.finish.reason == "stop"
    assert len(sim.requests) == 2 and sim.requests[1].connection == 2


async def test_closing_the_pool_closes_its_idle_connections(sim, pool):
    client = make_client(sim, "minimax", transport=pool)
    await gather(client.stream(_request("minimax")))

    await pool.close()  # at shutdown

    completion = await gather(client.stream(_request("minimax")))
    assert isinstance(completion.finish, Finish)
    assert sim.requests[1].connection == 2


async def test_a_connection_idle_longer_than_the_keepalive_is_closed_not_used_again(sim):
    short = _pool(0.3)
    client = make_client(sim, "minimax", transport=short)
    try:
        await gather(client.stream(_request("minimax")))
        await asyncio.sleep(0.4)
        await gather(client.stream(_request("minimax")))
    finally:
        await short.close()

    assert [r.connection for r in sim.requests] == [1, 2]
    await _until(lambda: sim.open_connections == 0)  # the expired one was closed too


async def test_a_connection_the_upstream_closes_while_idle_is_not_used_again(sim, pool):
    sim.idle_timeout = 0.2  # the upstream's keep-alive is shorter than ours
    client = make_client(sim, "minimax", transport=pool)
    await gather(client.stream(_request("minimax")))
    await _until(lambda: sim.open_connections == 0)

    completion = await gather(client.stream(_request("minimax")))

    assert completion.finish.reason == "stop"
    assert [r.connection for r in sim.requests] == [1, 2]
