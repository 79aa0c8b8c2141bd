"""Past the knee, a reply's frames get bigger rather than later, and a socket that falls
behind or misses frames catches up by snapshot instead of losing text."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from channels.db import database_sync_to_async

from chat.actions import replies
from chat.delivery import SocketDelivery, Verdict
from chat.models import Message
from chat.streaming import Doorbell, LoopPace, ReplyBuffer, WorkBudget
from tests.streams import DELTA, Transcript, is_final, receive_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _delta(starts, ends, published_at, reply_id=7):
    return {"message_id": reply_id, "starts": starts, "ends": ends, "published_at": published_at}


def test_a_socket_forwards_contiguous_deltas_and_skips_what_a_snapshot_covered():
    delivery = SocketDelivery(lag_limit=1.0)
    assert delivery.delta(_delta([0, 0], [0, 5], 100.0), 100.01) is Verdict.FORWARD
    assert delivery.delta(_delta([0, 5], [0, 9], 100.05), 100.06) is Verdict.FORWARD
    delivery.snapshot({"message_id": 7, "ends": [0, 20]})
    assert delivery.delta(_delta([0, 9], [0, 15], 100.1), 100.11) is Verdict.SKIP
    assert delivery.delta(_delta([0, 20], [0, 24], 100.2), 100.21) is Verdict.FORWARD


def test_a_socket_that_falls_behind_asks_for_one_snapshot_and_skips_until_it_comes():
    delivery = SocketDelivery(lag_limit=1.0, resync_timeout=2.0)
    assert delivery.delta(_delta([0, 0], [0, 5], 100.0), 100.01) is Verdict.FORWARD
    assert delivery.delta(_delta([0, 5], [0, 9], 100.1), 101.5) is Verdict.RESYNC
    assert delivery.delta(_delta([0, 9], [0, 12], 100.2), 101.6) is Verdict.SKIP
    delivery.snapshot({"message_id": 7, "ends": [0, 12]})
    assert delivery.delta(_delta([0, 12], [0, 14], 101.7), 101.71) is Verdict.FORWARD


def test_a_lost_snapshot_is_asked_for_again():
    delivery = SocketDelivery(lag_limit=1.0, resync_timeout=2.0)
    delivery.delta(_delta([0, 0], [0, 5], 100.0), 100.0)
    assert delivery.delta(_delta([0, 9], [0, 12], 100.5), 100.5) is Verdict.RESYNC  # a gap
    assert delivery.delta(_delta([0, 12], [0, 15], 101.0), 101.0) is Verdict.SKIP
    assert delivery.delta(_delta([0, 15], [0, 18], 103.0), 103.0) is Verdict.RESYNC


def test_a_client_that_stops_acknowledging_has_deltas_held_back_past_the_window():
    delivery = SocketDelivery(lag_limit=1.0, window=100)
    delivery.count_sent(90)
    assert delivery.delta(_delta([0, 0], [0, 5], 100.0), 100.0) is Verdict.FORWARD
    delivery.count_sent(20)  # 110 unacknowledged: over the window
    assert delivery.delta(_delta([0, 5], [0, 9], 100.1), 100.1) is Verdict.SKIP
    assert delivery.delta(_delta([0, 9], [0, 12], 100.2), 100.2) is Verdict.SKIP
    # The client took some, not yet half the window: still held.
    assert delivery.acknowledge(40, 100.3) == []
    assert delivery.delta(_delta([0, 12], [0, 14], 100.3), 100.3) is Verdict.SKIP
    # Half the window drained: the held reply is caught up by one snapshot.
    assert delivery.acknowledge(70, 100.4) == [7]
    assert delivery.delta(_delta([0, 14], [0, 16], 100.4), 100.4) is Verdict.SKIP
    delivery.snapshot({"message_id": 7, "ends": [0, 16]})
    assert delivery.delta(_delta([0, 16], [0, 18], 100.5), 100.5) is Verdict.FORWARD


def test_acknowledgements_beyond_what_was_sent_or_going_backwards_change_nothing():
    delivery = SocketDelivery(lag_limit=1.0, window=100)
    delivery.count_sent(50)
    delivery.acknowledge(10_000, 100.0)  # a client counting emoji twice, or lying
    assert delivery.unacknowledged == 0
    delivery.count_sent(150)
    delivery.acknowledge(0, 100.1)
    assert delivery.unacknowledged == 150
    assert delivery.delta(_delta([0, 0], [0, 5], 100.2), 100.2) is Verdict.SKIP


def test_a_reply_that_ends_while_held_back_is_not_caught_up_again():
    delivery = SocketDelivery(lag_limit=1.0, window=100)
    delivery.count_sent(500)
    assert delivery.delta(_delta([0, 0], [0, 5], 100.0), 100.0) is Verdict.SKIP
    delivery.finished({"message_id": 7})
    assert delivery.acknowledge(500, 100.1) == []


def test_a_constant_clock_offset_between_processes_is_not_lag():
    delivery = SocketDelivery(lag_limit=1.0)
    skew = 30.0  # the publishing host's clock is half a minute behind
    for index in range(5):
        start, end = index * 5, index * 5 + 5
        verdict = delivery.delta(_delta([0, start], [0, end], 100.0 + index), 100 + index + skew)
        assert verdict is Verdict.FORWARD


def test_the_frame_interval_grows_with_loop_lateness_up_to_a_ceiling_and_recovers():
    pace = LoopPace(ceiling=1.0)
    assert pace.interval(0.05) == 0.05
    for _ in range(30):
        pace.observe(0.05, 0.05 + 0.2)  # every sleep wakes 200 ms late
    assert 0.3 < pace.interval(0.05) <= 1.0
    for _ in range(30):
        pace.observe(0.05, 0.05 + 5.0)
    assert pace.interval(0.05) == 1.0
    for _ in range(100):
        pace.observe(0.05, 0.05)
    assert pace.interval(0.05) == 0.05
    assert pace.interval(0) == 0  # frames as tokens arrive, while the loop keeps up


def test_a_late_loop_leaves_optional_work_a_smaller_share_from_the_next_window():
    pace = LoopPace()
    budget = WorkBudget(0.1, window=1.0, scale=pace.relief)
    assert budget.allows() and budget.limit == pytest.approx(0.1)
    for _ in range(50):
        pace.observe(0.05, 0.05 + 0.2)  # every sleep wakes 200 ms late
    budget.charge(0.04)
    assert budget.allows()  # this window keeps the share it started with
    budget.since -= 1.0  # the next window
    assert budget.allows() and budget.limit == pytest.approx(0.025)
    budget.charge(0.03)
    assert not budget.allows()  # formatting waits: the text keeps its pace
    for _ in range(100):
        pace.observe(0.05, 0.05)  # on time again
    budget.since -= 1.0
    assert budget.allows() and budget.limit == pytest.approx(0.1)


async def test_a_doorbell_wakes_its_waiter_once_per_ring_and_remembers_an_early_ring():
    bell = Doorbell()
    assert await bell.wait(0.01) is False  # nobody rang: the timeout ends the wait
    bell.ring()
    assert await bell.wait(5) is True  # rang before the wait: no waiting at all
    assert await bell.wait(0.01) is False  # the ring was taken
    loop = asyncio.get_running_loop()
    loop.call_later(0.02, bell.ring)
    began = loop.time()
    assert await bell.wait(5) is True
    assert loop.time() - began < 1
    bell.ring()
    bell.clear()
    assert await bell.wait(0.01) is False


async def test_a_cancelled_doorbell_wait_leaves_the_bell_usable():
    bell = Doorbell()
    waiting = asyncio.ensure_future(bell.wait())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    bell.ring()  # no waiter left to wake, and no error
    assert await bell.wait(5) is True


async def test_text_and_the_upstream_ending_wake_the_publisher_between_frames(
    settings, monkeypatch
):
    """The publisher sleeps the frame interval between frames; the upstream's end cuts
    that sleep short, so the final text is not held back by a frame interval."""
    published: list[str] = []

    async def record(context, buffer):  # type: ignore[no-untyped-def]
        published.append(buffer.take_deltas()[1][1])

    buffer = ReplyBuffer()

    async def upstream() -> None:
        for word in ("one ", "two ", "three"):
            buffer.add_text(word, 0.0)
            await asyncio.sleep(0.01)

    loop = asyncio.get_running_loop()
    task = asyncio.create_task(upstream())
    began = loop.time()
    monkeypatch.setattr(replies, "_publish_deltas", record)
    settings.REPLY_FRAME_INTERVAL = 10.0
    await asyncio.wait_for(replies._publish_until_done(None, buffer, task), 5)
    assert "".join(published) == "one two three"
    assert loop.time() - began < 5  # not one 10 s frame interval per frame


async def _frames_of_one_reply(connect, owner, conversation, client_id):
    socket, _ = await connect(owner, conversation.pk)
    await socket.send_to(
        text_data=json.dumps({"action": "send", "message": "Go on", "client_id": client_id})
    )
    await receive_until(socket, lambda f: f'data-ack="{client_id}"' in f)
    reply = await database_sync_to_async(conversation.messages.filter(role="assistant").last)()
    transcript = Transcript()
    await receive_until(socket, is_final(reply.pk), transcript, within=20)
    return transcript, reply


async def test_a_late_loop_sends_fewer_bigger_frames_with_the_same_text(
    connect, owner, conversation, settings, monkeypatch
):
    settings.REPLY_FRAME_INTERVAL = 0.02
    settings.DEMO_TOKENS_PER_SECOND = 150
    settings.DEMO_REPLY_TOKENS = 120
    on_time, reply = await _frames_of_one_reply(connect, owner, conversation, "pace-1")
    monkeypatch.setattr(replies.loop_pace, "lateness", 0.15)
    monkeypatch.setattr(replies.loop_pace, "observe", lambda intended, actual: None)
    late, late_reply = await _frames_of_one_reply(connect, owner, conversation, "pace-2")
    deltas = [sum(1 for f in t.frames if DELTA.search(f)) for t in (on_time, late)]
    assert deltas[1] * 2 < deltas[0], deltas
    await database_sync_to_async(late_reply.refresh_from_db)()
    assert late.gaps == 0 and late.text(late_reply.pk) and late_reply.status == "complete"


class _SkewedClock:
    """``time.time`` for the consumer, set to run ``skew`` seconds ahead."""

    def __init__(self) -> None:
        self.skew = 0.0

    def time(self) -> float:
        return time.time() + self.skew


async def test_a_socket_that_falls_behind_mid_reply_catches_up_by_snapshot(
    connect, owner, conversation, settings, monkeypatch
):
    settings.REPLY_FRAME_INTERVAL = 0.02
    settings.DEMO_TOKENS_PER_SECOND = 60
    settings.DEMO_REPLY_TOKENS = 150
    clock = _SkewedClock()
    monkeypatch.setattr("chat.consumers.time", clock)
    socket, _ = await connect(owner, conversation.pk)
    # From the send on: the provisional reply shown before the store goes on after it.
    transcript = Transcript()
    await socket.send_to(
        text_data=json.dumps({"action": "send", "message": "Tell me", "client_id": "lag-1"})
    )
    await receive_until(socket, lambda f: 'data-ack="lag-1"' in f, transcript)
    reply = await database_sync_to_async(conversation.messages.filter(role="assistant").last)()
    for _ in range(3):
        await receive_until(socket, lambda f: DELTA.search(f) is not None, transcript)
    clock.skew = 3.0  # every frame now reaches this socket 3 s after it was published
    frames_before = len(transcript.frames)
    await asyncio.sleep(0.4)
    clock.skew = 0.0
    final = await receive_until(socket, is_final(reply.pk), transcript, within=20)
    during = transcript.frames[frames_before:]
    snapshots = [f for f in during if 'data-status="streaming"' in f]
    assert snapshots, "the socket should have caught up by snapshot"
    await database_sync_to_async(reply.refresh_from_db)()
    assert transcript.gaps == 0
    assert reply.status == "complete" and reply.content.startswith(transcript.text(reply.pk))
    assert 'data-status="complete"' in final


async def test_a_socket_that_missed_frames_catches_up_by_snapshot_without_a_gap(
    connect, owner, conversation
):
    """What channels-redis does past a channel's capacity: drop group messages."""
    socket, _ = await connect(owner, conversation.pk)
    while not await socket.receive_nothing(timeout=0.3):  # the catch-up on connect
        await socket.receive_from()
    reply = await database_sync_to_async(Message.objects.create)(
        conversation=conversation, role="assistant", status="streaming"
    )
    buffer = ReplyBuffer()
    live = replies.LiveReply(reply.pk, buffer=buffer)
    live.context = replies.ReplyContext(  # type: ignore[arg-type]
        reply_id=reply.pk,
        conversation_id=conversation.pk,
        model=None,
        client=None,
        request=None,
        speaker="Mara",
    )
    replies._live[reply.pk] = live
    try:
        transcript = Transcript()
        for piece in ("Hello", " there", " — lost", " and after"):
            buffer.add_text(piece, 0.0)
            if piece == " — lost":
                buffer.take_deltas()  # published, but this socket never gets it
                continue
            await replies._publish_deltas(live.context, buffer)
        await receive_until(socket, lambda f: 'data-status="streaming"' in f, transcript)
        assert transcript.text(reply.pk) == "Hello there — lost and after"
        buffer.add_text("!", 0.0)
        await replies._publish_deltas(live.context, buffer)
        await receive_until(socket, lambda f: DELTA.search(f) is not None, transcript)
        assert transcript.text(reply.pk) == "Hello there — lost and after!"
        assert transcript.gaps == 0
    finally:
        replies._live.pop(reply.pk, None)


async def _acknowledge(socket, transcript: Transcript) -> None:
    received = sum(len(frame) for frame in transcript.frames)
    await socket.send_to(text_data=json.dumps({"action": "ack", "received": received}))


async def test_a_client_that_stops_reading_costs_the_server_no_more_than_the_window(
    connect, owner, conversation, settings
):
    """The page acknowledges what it received; one that stops gets nothing more than the
    window until it reads again, then one snapshot, then the live tail."""
    # Below what settings allow, to keep the reply short; the provisional exchange
    # shown before the send is stored counts against it too (about 2 KiB).
    settings.SOCKET_SEND_WINDOW = 8192
    settings.REPLY_FRAME_INTERVAL = 0.02
    settings.DEMO_TOKENS_PER_SECOND = 400
    settings.DEMO_REPLY_TOKENS = 1000
    socket, _ = await connect(owner, conversation.pk)
    transcript = Transcript()
    await socket.send_to(
        text_data=json.dumps({"action": "send", "message": "Everything", "client_id": "slow-1"})
    )
    await receive_until(socket, lambda f: 'data-ack="slow-1"' in f, transcript)
    reply = await database_sync_to_async(conversation.messages.filter(role="assistant").last)()
    # Read without acknowledging: the socket stops sending deltas past the window.
    while not await socket.receive_nothing(timeout=0.5):
        transcript.apply(await socket.receive_from())
    held_at = sum(len(frame) for frame in transcript.frames)
    assert 8192 < held_at < 8192 + 1024, held_at  # the window, and the frame that crossed it
    assert sum(1 for frame in transcript.frames if DELTA.search(frame)) > 3
    await database_sync_to_async(reply.refresh_from_db)()
    assert reply.status == "streaming", "the reply itself goes on"

    # Reading again: a snapshot, then deltas, acknowledged as a page does.
    await _acknowledge(socket, transcript)
    await receive_until(socket, lambda f: 'data-status="streaming"' in f, transcript)
    received_deltas = 0
    while True:
        frame = await socket.receive_from(timeout=20)
        transcript.apply(frame)
        received_deltas += bool(DELTA.search(frame))
        if is_final(reply.pk)(frame):
            break
        await _acknowledge(socket, transcript)
    assert received_deltas > 0
    await database_sync_to_async(reply.refresh_from_db)()
    assert transcript.gaps == 0 and reply.status == "complete"
    assert transcript.text(reply.pk) == reply.content


async def test_the_database_thread_hands_frames_to_a_busy_loop_without_waiting_and_in_order():
    """A send's frames go out once its transaction commits, but the database thread does
    not wait for the event loop to publish them: it goes on to the next socket's send."""
    from channels.layers import get_channel_layer
    from django.db import transaction

    from chat import events

    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("outbox-test", channel)

    def publish_twenty() -> float:
        started = time.monotonic()
        for index in range(20):
            with transaction.atomic():
                events.publish_on_commit("outbox-test", events.frame(str(index)))
        return time.monotonic() - started

    handed = asyncio.ensure_future(database_sync_to_async(publish_twenty)())
    await asyncio.sleep(0.01)  # the thread has started
    time.sleep(0.5)  # noqa: ASYNC251 - the loop is busy (a burst of streams) for half a second
    assert await handed < 0.25
    await events.outbox_flushed()
    received = [(await layer.receive(channel))["html"] for _ in range(20)]
    assert received == [str(index) for index in range(20)]
