"""The Redis pub/sub layer's pipelined publishing and in-memory delivery to the
publishing process's own channels, against a private Redis server."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio.client import Pipeline

from chat.events import LAYER_ERRORS
from chat.layers import RedisPubSubChannelLayer

pytestmark = pytest.mark.faults


def _layer(url: str) -> RedisPubSubChannelLayer:
    return RedisPubSubChannelLayer(
        hosts=[{"address": url, "socket_connect_timeout": 0.5, "socket_timeout": 2}],
        prefix="test",
    )


async def test_frames_published_at_once_share_round_trips_and_arrive_in_order(
    redis_server, monkeypatch
):
    round_trips, published = 0, 0
    execute = Pipeline.execute

    async def counted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal round_trips, published
        round_trips += 1
        published += len(self.command_stack)
        return await execute(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "execute", counted)
    layer, listener = _layer(redis_server.url), _layer(redis_server.url)  # two processes
    tab = await listener.new_channel()
    await listener.group_add("conversation.1", tab)

    # 30 replies publish 10 frames each, all at once, as a busy process's replies do.
    async def reply(number: int) -> None:
        for frame in range(10):
            await layer.group_send("conversation.1", {"type": "chat.frame", "n": [number, frame]})

    await asyncio.gather(*(reply(number) for number in range(30)))
    got = [(await asyncio.wait_for(listener.receive(tab), 5))["n"] for _ in range(300)]

    assert sorted(map(tuple, got)) == [(n, f) for n in range(30) for f in range(10)]
    for number in range(30):  # each reply's frames in the order it published them
        assert [f for n, f in got if n == number] == list(range(10))
    assert published == 300
    assert round_trips <= 30  # one per reply's turn at most, never one per frame
    for each in (layer, listener):
        await each.flush()


async def test_while_redis_is_down_every_waiting_publisher_is_told_then_publishing_resumes(
    redis_server,
):
    layer = _layer(redis_server.url)
    tab = await layer.new_channel()
    await layer.group_add("conversation.1", tab)
    await layer.group_send("conversation.1", {"type": "chat.frame", "n": 0})
    assert (await layer.receive(tab))["n"] == 0

    redis_server.stop()
    outcomes = await asyncio.gather(
        *(layer.group_send("conversation.1", {"type": "x", "n": n}) for n in range(5)),
        return_exceptions=True,
    )
    assert all(isinstance(outcome, LAYER_ERRORS) for outcome in outcomes), outcomes

    redis_server.start()
    publisher = _layer(redis_server.url)  # the subscriber's connection died with the server
    listener = _layer(redis_server.url)
    tab = await listener.new_channel()
    await listener.group_add("conversation.1", tab)
    await publisher.group_send("conversation.1", {"type": "chat.frame", "n": 1})
    assert (await asyncio.wait_for(listener.receive(tab), 5))["n"] == 1
    await layer.group_send("conversation.1", {"type": "chat.frame", "n": 2})  # recovered
    assert (await asyncio.wait_for(listener.receive(tab), 5))["n"] == 2
    for each in (layer, publisher, listener):
        await each.flush()


async def test_a_process_hands_its_own_tabs_a_message_at_once_and_other_processes_once(
    redis_server, monkeypatch
):
    here, there = _layer(redis_server.url), _layer(redis_server.url)  # two processes
    mine, theirs = await here.new_channel(), await there.new_channel()
    await here.group_add("conversation.1", mine)
    await there.group_add("conversation.1", theirs)
    waiting = here._get_layer().channels[mine]

    for n in range(3):
        await here.group_send("conversation.1", {"type": "chat.frame", "n": n})
        assert waiting.qsize() == n + 1  # in memory, not back from Redis
    assert [(await asyncio.wait_for(there.receive(theirs), 5))["n"] for _ in range(3)] == [0, 1, 2]
    await asyncio.sleep(0.3)  # Redis has echoed this process's own messages back by now
    assert [(await here.receive(mine))["n"] for _ in range(3)] == [0, 1, 2]
    assert waiting.empty()  # each once

    # A message for a channel of this process never leaves it; one from another
    # process arrives through Redis.
    pipelines = 0
    execute = Pipeline.execute

    async def counted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal pipelines
        pipelines += 1
        return await execute(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "execute", counted)
    await here.send(mine, {"type": "reply.stopping"})
    assert pipelines == 0 and (await here.receive(mine))["type"] == "reply.stopping"
    await there.send(mine, {"type": "reply.stopping", "from": "there"})
    assert (await asyncio.wait_for(here.receive(mine), 5))["from"] == "there"
    assert pipelines == 1
    for each in (here, there):
        await each.flush()
