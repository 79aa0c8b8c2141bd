"""The socket's dispatch loop: both inboxes, one message at a time, without a task per
frame."""

from __future__ import annotations

import asyncio

import pytest
from channels.exceptions import StopConsumer

from chat.consumers import pump


class _Inbox:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict] = asyncio.Queue()

    async def receive(self) -> dict:
        return await self.queue.get()


async def test_frames_and_client_messages_are_handled_in_order_one_at_a_time():
    client, layer = _Inbox(), _Inbox()
    handled: list[tuple[str, int]] = []
    busy = False
    all_frames = asyncio.Event()

    async def dispatch(message: dict) -> None:
        nonlocal busy
        assert not busy, "two handlers at once"
        busy = True
        await asyncio.sleep(0)  # a handler that awaits lets the other inbox try
        handled.append((message["type"], message["n"]))
        busy = False
        if message["type"] == "chat.frame" and message["n"] == 49:
            all_frames.set()
        if message["type"] == "websocket.disconnect":
            raise StopConsumer

    for n in range(50):
        layer.queue.put_nowait({"type": "chat.frame", "n": n})
        if n % 10 == 0:
            client.queue.put_nowait({"type": "websocket.receive", "n": n})
    serving = asyncio.create_task(pump(client.receive, layer.receive, dispatch))
    await asyncio.wait_for(all_frames.wait(), 5)
    client.queue.put_nowait({"type": "websocket.disconnect", "n": 0})
    with pytest.raises(StopConsumer):
        await asyncio.wait_for(serving, 5)
    assert [n for kind, n in handled if kind == "chat.frame"] == list(range(50))
    assert [n for kind, n in handled if kind == "websocket.receive"] == [0, 10, 20, 30, 40]


async def test_a_frame_costs_no_new_task():
    loop = asyncio.get_running_loop()
    created = 0
    default = loop.get_task_factory()

    def counting(loop, coro, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal created
        created += 1
        if default is not None:
            return default(loop, coro, **kwargs)
        return asyncio.Task(coro, loop=loop, **kwargs)

    client, layer = _Inbox(), _Inbox()
    frames = 0
    all_frames = asyncio.Event()

    async def dispatch(message: dict) -> None:
        nonlocal frames
        frames += 1
        if frames == 200:
            all_frames.set()

    loop.set_task_factory(counting)
    try:
        serving = asyncio.create_task(pump(client.receive, layer.receive, dispatch))
        for n in range(200):
            layer.queue.put_nowait({"type": "chat.frame", "n": n})
            await asyncio.sleep(0)
        await asyncio.wait_for(all_frames.wait(), 5)
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
    finally:
        loop.set_task_factory(default)
    assert created < 5, created  # Channels' own loop started one per frame: 200


async def test_a_failing_frame_handler_ends_the_socket_with_its_error_and_leaves_no_task():
    client, layer = _Inbox(), _Inbox()

    async def dispatch(message: dict) -> None:
        raise ValueError("No handler for message type nonsense")

    before = asyncio.all_tasks()
    layer.queue.put_nowait({"type": "nonsense"})
    with pytest.raises(ValueError, match="nonsense"):
        await asyncio.wait_for(pump(client.receive, layer.receive, dispatch), 5)
    assert asyncio.all_tasks() <= before


async def test_cancelling_the_socket_stops_both_readers():
    client, layer = _Inbox(), _Inbox()

    async def dispatch(message: dict) -> None:
        pass

    before = asyncio.all_tasks()
    serving = asyncio.create_task(pump(client.receive, layer.receive, dispatch))
    await asyncio.sleep(0.01)
    serving.cancel()
    await asyncio.gather(serving, return_exceptions=True)
    assert serving.cancelled()
    assert asyncio.all_tasks() <= before
