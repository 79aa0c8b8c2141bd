"""Redis: idle sockets, pauses and outages lose nothing."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.faults.conftest import assert_clean_logs, request_for, upstream_text
from tests.streams import STREAMING_BODY, has_delta, is_final

pytestmark = pytest.mark.faults


async def test_after_a_long_idle_pause_frames_and_stop_still_cross_processes_through_redis(
    site_factory, redis_server, simulator
):
    site = site_factory(redis=redis_server)
    server, conversation, socket = await site.one_chat()
    # Another tab, on another process: what it sees travels through Redis (a process
    # hands its own sockets their frames in memory).
    other = site.serve()
    watcher = await site.socket(other.url, conversation)

    # Three times channels-redis's 5 s blocking pop: the old socket timeout fired at 5 s.
    await asyncio.sleep(15)
    client_id = await socket.send("Still there?")
    ack = await socket.wait_for(lambda f: f'data-ack="{client_id}"' in f, within=5)
    assert "data-message-id" in ack
    reply_id = await socket.reply_id()
    await socket.final(reply_id)
    assert "status-complete" in await watcher.final(reply_id, within=5)
    assert site.row(reply_id)["status"] == "complete"

    # The upstream stalls for 12 s mid-reply; Stop pressed in the other process's tab
    # during the stall still reaches the reply and ends it in both tabs.
    simulator.queue_fault("pause-after=5,pause-seconds=12")
    await socket.send("Tell me a long story")
    reply_id = await socket.reply_id(after=reply_id)
    await watcher.wait_for(has_delta)
    await asyncio.sleep(10)
    pressed = time.monotonic()
    await watcher.stop()
    final = await watcher.final(reply_id, within=5)
    assert "status-stopped" in final and time.monotonic() - pressed < 2
    assert "status-stopped" in await socket.final(reply_id, within=5)
    stored = site.row(reply_id)
    assert stored["status"] == "stopped"
    assert socket.closed_with is None and watcher.closed_with is None  # neither died
    assert_clean_logs(site)


async def test_a_redis_outage_does_not_abort_the_reply(site_factory, redis_server, simulator):
    site = site_factory(redis=redis_server, DEMO_TOKENS_PER_SECOND="40")
    server, conversation, socket = await site.one_chat()
    simulator.queue_fault("length=300")
    await socket.send("A long answer, please")
    reply_id = await socket.reply_id()
    await socket.wait_for(has_delta)

    redis_server.stop()
    await asyncio.sleep(0.5)
    # While Redis is down, a new socket is refused cleanly (403, not 500).
    async with httpx.AsyncClient() as client:
        handshake = await client.get(
            f"{server.url}/ws/c/{conversation}/",
            headers={
                "Cookie": site.cookie,
                "Origin": server.url,
                "Connection": "Upgrade",
                "Upgrade": "websocket",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            },
        )
    assert handshake.status_code == 403
    await asyncio.sleep(1.5)
    redis_server.start()  # a new, empty Redis on the same port

    # The reply went on, and the socket (re-joined after the outage) sees its end.
    final = await socket.final(reply_id, within=40)
    stored = site.row(reply_id)
    assert stored["status"] == "complete", stored["error"]
    assert "status-complete" in final
    record = request_for(simulator, "A long answer")
    assert stored["content"].strip() == upstream_text(record).strip()
    assert socket.closed_with is None
    late = await site.socket(server.url, conversation)
    await late.final(reply_id)
    assert_clean_logs(site)
    assert "Could not store the end of reply" not in site.logs()


async def test_a_tab_opened_on_another_process_mid_reply_streams_on_from_one_snapshot(
    site_factory, redis_server, simulator
):
    site = site_factory(redis=redis_server, DEMO_TOKENS_PER_SECOND="40")
    server, conversation, socket = await site.one_chat()
    simulator.queue_fault("length=480")  # 12 s
    await socket.send("A long answer, please")
    reply_id = await socket.reply_id()
    await socket.wait_for(has_delta)
    # Until the other tab opens, no other process is in the conversation, and this one
    # keeps the reply's deltas off Redis.
    other = site.serve()
    await asyncio.sleep(1)
    watcher = await site.socket(other.url, conversation, drain=0)
    await watcher.final(reply_id)
    stored = site.row(reply_id)
    assert stored["status"] == "complete", stored["error"]

    # The other tab got the reply as stored, then one snapshot of it as published, then
    # every delta after that as it was sent: none went missing (a gap would have cost
    # it another snapshot).
    region = f"m-{reply_id}-text"
    ended = next(
        i for i, frame in enumerate(watcher.transcript.frames) if is_final(reply_id)(frame)
    )
    frames = watcher.transcript.frames[:ended]
    snapshots = [
        i
        for i, frame in enumerate(frames)
        if any(match["target"] == region for match in STREAMING_BODY.finditer(frame))
    ]
    assert len(snapshots) == 2 and snapshots[0] == 0, snapshots
    assert sum(has_delta(frame) for frame in frames[snapshots[1] :]) >= 20
    assert watcher.transcript.text(reply_id) == socket.transcript.text(reply_id)
    assert watcher.transcript.text(reply_id).strip() == stored["content"].strip()
    assert_clean_logs(site)
