"""Processes that stop: SIGTERM drains, SIGKILL is recovered from fast."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.faults.conftest import assert_clean_logs, disconnected_at, request_for, upstream_text
from tests.streams import has_delta

pytestmark = pytest.mark.faults


async def test_sigterm_finishes_short_replies_and_saves_long_ones_with_all_their_text(
    site_factory, redis_server, simulator
):
    site = site_factory(redis=redis_server, REPLY_SHUTDOWN_GRACE="3")
    stopping, staying = site.serve(), site.serve()
    site.sign_up(stopping.url)
    short_chat = site.new_conversation(stopping.url)
    long_chat = site.new_conversation(stopping.url)
    short = await site.socket(stopping.url, short_chat)
    long = await site.socket(stopping.url, long_chat)
    watcher = await site.socket(staying.url, long_chat)  # another tab, other process

    simulator.queue_fault("length=2000,pace=20")  # ~100 s: cannot finish in the grace
    await long.send("long-one: tell me everything")
    long_id = await long.reply_id()
    await long.wait_for(has_delta)
    simulator.queue_fault("length=40,pace=40")  # ~1.5 s: finishes within the grace
    await short.send("short-one: briefly")
    short_id = await short.reply_id()
    await short.wait_for(has_delta)

    sent_at = time.monotonic()
    assert stopping.terminate() == 0
    assert time.monotonic() - sent_at < 10

    finished = site.row(short_id)
    assert finished["status"] == "complete"
    cut = site.row(long_id)
    assert cut["status"] == "interrupted" and "server restarted" in cut["error"]
    # Nothing lost: every character the upstream sent before the cut is stored. Only
    # what it wrote in the moment the cut took (still on the wire, or in the loop turn
    # the reply was cancelled in) may be missing, and what it wrote after it.
    record = request_for(simulator, "long-one")
    assert cut["content"] and upstream_text(record).startswith(cut["content"])
    assert cut["content"].startswith(upstream_text(record, before=disconnected_at(record) - 0.25))
    # The other tab was told, through Redis, by the process that was stopping.
    final = await watcher.final(long_id, within=5)
    assert "status-interrupted" in final
    assert cut["content"].startswith(watcher.transcript.text(long_id))
    assert site.streaming_rows() == 0
    assert_clean_logs(site)


async def test_after_sigkill_another_process_takes_over_and_stop_ends_an_orphan_at_once(
    site_factory, redis_server, simulator
):
    site = site_factory(redis=redis_server, DEMO_TOKENS_PER_SECOND="20")
    doomed, survivor = site.serve(), site.serve()
    site.sign_up(doomed.url)
    first_chat = site.new_conversation(doomed.url)
    second_chat = site.new_conversation(doomed.url)
    sockets = [await site.socket(doomed.url, chat) for chat in (first_chat, second_chat)]
    replies = []
    for socket, chat in zip(sockets, (first_chat, second_chat), strict=True):
        simulator.queue_fault("length=2000")
        await socket.send(f"conversation {chat}")
        replies.append(await socket.reply_id(after=max(replies, default=0)))
        await socket.wait_for(has_delta)
    await asyncio.sleep(1.5)  # about one flush of partial text
    watchers = [await site.socket(survivor.url, chat) for chat in (first_chat, second_chat)]

    doomed.kill()
    killed_at = time.monotonic()

    # Stop on the orphan: no process answers, so the reply ends now with its saved text.
    await watchers[1].stop()
    final = await watchers[1].final(replies[1], within=5)
    assert "status-stopped" in final and time.monotonic() - killed_at < 3
    assert site.row(replies[1])["status"] == "stopped"

    # The other orphan is taken over by the surviving process within ~10 s, and its
    # tab is told without reloading.
    final = await watchers[0].final(replies[0], within=20)
    taken_after = time.monotonic() - killed_at
    assert "status-interrupted" in final and taken_after < 14, taken_after
    row = site.row(replies[0])
    assert row["status"] == "interrupted" and row["taken_over"]
    assert "stopped before it finished" in row["error"] and row["content"]
    # At most about a second of text was lost with the process.
    sent = upstream_text(request_for(simulator, f"conversation {first_chat}"))
    assert sent.startswith(row["content"])
    assert len(sent) - len(row["content"]) <= 40 * 20  # one second at 20 tokens/s, generously
    assert site.streaming_rows() == 0

    # The conversation is usable again at once.
    simulator.queue_fault("length=10")
    await watchers[0].send("And now?")
    assert "still being written" not in "".join(watchers[0].transcript.frames[-3:])


async def test_a_quiet_reply_outlives_the_stale_limit_while_its_process_heartbeats(
    site_factory, redis_server, simulator
):
    """The other process must not take over a live reply whose upstream went quiet
    for longer than REPLY_STALE_AFTER (10 s): the writer's heartbeat keeps it fresh."""
    site = site_factory(redis=redis_server)
    writing, other = site.serve(), site.serve()
    site.sign_up(writing.url)
    chat = site.new_conversation(writing.url)
    socket = await site.socket(writing.url, chat)
    watcher = await site.socket(other.url, chat)
    simulator.queue_fault("pause-after=3,pause-seconds=14")
    await socket.send("pause for a while")
    reply_id = await socket.reply_id()
    final = await watcher.final(reply_id, within=40)
    assert "status-complete" in final
    row = site.row(reply_id)
    assert row["status"] == "complete" and not row["taken_over"]
    assert row["content"] == upstream_text(request_for(simulator, "pause for a while"))
    assert "Took over reply" not in site.logs()
    assert_clean_logs(site)
