"""The Redis pub/sub layer's pipelined publishing and in-memory delivery to the
publishing process's own channels, against a private Redis server."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

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


@dataclass
class _Wire:
    """What the layers sent Redis: pipelines (round trips) and PUBLISH commands."""

    round_trips: int = 0
    published: int = 0


def _watch_the_wire(monkeypatch) -> _Wire:  # type: ignore[no-untyped-def]
    """Count what every layer sends Redis from now on."""
    wire = _Wire()
    execute = Pipeline.execute

    async def counted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        wire.round_trips += 1
        wire.published += sum(command[0][0] == "PUBLISH" for command in self.command_stack)
        return await execute(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "execute", counted)
    return wire


async def test_frames_published_at_once_share_round_trips_and_arrive_in_order(
    redis_server, monkeypatch
):
    layer, listener = _layer(redis_server.url), _layer(redis_server.url)  # two processes
    tab = await listener.new_channel()
    await listener.group_add("conversation.1", tab)
    wire = _watch_the_wire(monkeypatch)  # from here: not the listener's notice that it joined

    # 30 replies publish 10 frames each, all at once, as a busy process's replies do.
    async def reply(number: int) -> None:
        for frame in range(10):
            await layer.group_send("conversation.1", {"type": "chat.frame", "n": [number, frame]})

    await asyncio.gather(*(reply(number) for number in range(30)))
    got = [(await asyncio.wait_for(listener.receive(tab), 5))["n"] for _ in range(300)]

    assert sorted(map(tuple, got)) == [(n, f) for n in range(30) for f in range(10)]
    for number in range(30):  # each reply's frames in the order it published them
        assert [f for n, f in got if n == number] == list(range(10))
    assert wire.published == 300
    assert wire.round_trips <= 30  # one per reply's turn at most, never one per frame
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
    wire = _watch_the_wire(monkeypatch)
    await here.send(mine, {"type": "reply.stopping"})
    assert wire.round_trips == 0 and (await here.receive(mine))["type"] == "reply.stopping"
    await there.send(mine, {"type": "reply.stopping", "from": "there"})
    assert (await asyncio.wait_for(here.receive(mine), 5))["from"] == "there"
    assert wire.round_trips == 1
    for each in (here, there):
        await each.flush()


async def test_recoverable_messages_skip_redis_while_no_other_process_is_in_the_group(
    redis_server, monkeypatch
):
    here = _layer(redis_server.url)
    mine = await here.new_channel()
    await here.group_add("conversation.1", mine)
    here._get_layer().alone_recheck = 0.3
    wire = _watch_the_wire(monkeypatch)

    # The first publish learns that only this process listens; the deltas after it
    # stay in memory, where this process's own tab gets every one.
    for n in range(20):
        await here.group_send_recoverable("conversation.1", {"type": "chat.frame", "n": n})
    assert wire.published == 1
    # Any other message is still published, and checks again.
    await here.group_send("conversation.1", {"type": "chat.frame", "final": True})
    assert wire.published == 2
    # The check expires: the next delta goes through Redis and checks again.
    await asyncio.sleep(0.35)
    await here.group_send_recoverable("conversation.1", {"type": "chat.frame", "n": 20})
    await here.group_send_recoverable("conversation.1", {"type": "chat.frame", "n": 21})
    assert wire.published == 3
    got = [(await here.receive(mine)).get("n", "final") for _ in range(23)]
    assert got == [*range(20), "final", 20, 21]
    await asyncio.sleep(0.2)  # the echoes of what went through Redis are dropped
    assert here._get_layer().channels[mine].empty()

    # A group with no member in this process: every message is published (no one
    # here would hear another process join it).
    for n in range(3):
        await here.group_send_recoverable("conversation.2", {"type": "chat.frame", "n": n})
    assert wire.published == 6
    await here.flush()


async def test_a_process_joining_mid_stream_gets_every_delta_after_its_snapshot(
    redis_server, monkeypatch
):
    """The product's way in for a tab on another process: join the conversation's
    group, then ask the reply (through its group) for a snapshot. Everything published
    after the snapshot must arrive, without waiting for the publisher to check again."""
    here, there = _layer(redis_server.url), _layer(redis_server.url)  # two processes
    mine, control = await here.new_channel(), await here.new_channel()
    await here.group_add("conversation.1", mine)
    await here.group_add("reply.1", control)
    here._get_layer().alone_recheck = 3600  # only the join notice can end it
    wire = _watch_the_wire(monkeypatch)
    sent = 0
    done = asyncio.Event()

    async def reply() -> None:  # a delta every 2 ms
        nonlocal sent
        while not done.is_set():
            sent += 1  # counted as published before it goes, as a reply's text is
            await here.group_send_recoverable(
                "conversation.1", {"type": "chat.frame", "n": sent - 1}
            )
            await asyncio.sleep(0.002)

    async def answer_snapshot_requests() -> None:
        while True:
            request = await here.receive(control)
            await here.send(request["reply_to"], {"type": "snapshot", "upto": sent - 1})

    replying = asyncio.create_task(reply())
    answering = asyncio.create_task(answer_snapshot_requests())
    await asyncio.sleep(0.2)
    assert sent > 20 and wire.published <= 2  # one check, then alone
    theirs = await there.new_channel()
    await there.group_add("conversation.1", theirs)
    await there.group_send("reply.1", {"type": "reply.sync", "reply_to": theirs})
    while (message := await asyncio.wait_for(there.receive(theirs), 5))["type"] != "snapshot":
        pass  # deltas that overtook the snapshot
    upto = message["upto"]
    got = [(await asyncio.wait_for(there.receive(theirs), 5))["n"] for _ in range(100)]
    done.set()
    await replying
    answering.cancel()
    assert got == list(range(upto + 1, upto + 101))
    for each in (here, there):
        await each.flush()
