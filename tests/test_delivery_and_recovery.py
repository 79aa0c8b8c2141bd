"""Messages are stored once and acknowledged; orphaned replies end fast; big replies
and bad text never break a socket or a save."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from chat import actions
from chat.models import Message
from chat.rendering import FRAME_TEXT_CHARS, MessageView, message_frames
from chat.streaming import ReplyBuffer, SettledMarkdown
from chat.text import StreamCleaner, clean_text
from chat.tree import append
from tests.streams import Transcript, is_final, receive_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


async def _send(socket, text, client_id):
    await socket.send_to(
        text_data=json.dumps({"action": "send", "message": text, "client_id": client_id})
    )


@database_sync_to_async
def _user_messages(conversation) -> list[Message]:
    return list(conversation.messages.filter(role="user"))


async def test_a_message_resent_with_the_same_id_is_stored_once_and_acknowledged_twice(
    connect, owner, conversation
):
    socket, _ = await connect(owner, conversation.pk)
    await _send(socket, "Hello once", "abc-123")
    first = await receive_until(socket, lambda f: 'data-ack="abc-123"' in f)
    await actions.wait_for_running_replies()
    # The socket dropped before the browser saw the ack: it sends the same id again.
    await _send(socket, "Hello once", "abc-123")
    second = await receive_until(socket, lambda f: 'data-ack="abc-123"' in f)
    stored = await _user_messages(conversation)
    assert [m.content for m in stored] == ["Hello once"]
    assert (
        f'data-message-id="{stored[0].pk}"' in first
        and f'data-message-id="{stored[0].pk}"' in second
    )
    replies = await database_sync_to_async(conversation.messages.filter(role="assistant").count)()
    assert replies == 2  # the greeting and one reply: the resend started nothing


async def test_a_refusal_names_the_message_it_refused(connect, owner, conversation):
    socket, _ = await connect(owner, conversation.pk)
    await _send(socket, "   ", "empty-1")
    frame = await receive_until(socket, lambda f: "Type a message first" in f)
    assert 'data-refused="empty-1"' in frame


@pytest.mark.parametrize(
    "payload",
    [
        {"action": "send", "message": None},
        {"action": "send", "message": 42},
        {"action": "send", "message": "hi", "client_id": "../../etc"},
        {"action": "dance"},
        ["not", "an", "object"],
    ],
)
async def test_malformed_requests_get_an_error_frame_and_store_nothing(
    connect, owner, conversation, payload
):
    socket, _ = await connect(owner, conversation.pk)
    await socket.send_to(text_data=json.dumps(payload))
    frame = await receive_until(socket, lambda f: "composer-error" in f and "</div>" in f)
    assert "could not be read" in frame or "Type a message" in frame or "not supported" in frame
    assert await _user_messages(conversation) == []


async def test_text_is_cleaned_of_lone_surrogates_and_nul_before_storage(
    connect, owner, conversation
):
    socket, _ = await connect(owner, conversation.pk)
    await socket.send_to(
        text_data='{"action": "send", "message": "half \\ud83d emoji\\u0000 and \\ud83d\\ude00"}'
    )
    await receive_until(socket, lambda f: "data-ack" in f or "composer-error" in f)
    (stored,) = await _user_messages(conversation)
    assert stored.content == "half \ufffd emoji and 😀"


def test_an_emoji_split_across_chunks_as_surrogates_is_joined():
    buffer = ReplyBuffer()
    buffer.add_text("smile \ud83d", 0.0)
    assert buffer.content == "smile "  # the high surrogate waits for its pair
    buffer.add_text("\ude00 done", 0.1)
    buffer.add_text(" dangling \ud83d", 0.2)
    buffer.close()
    assert buffer.content == "smile 😀 done dangling \ufffd"
    assert clean_text("a\x00b") == "ab"
    cleaner = StreamCleaner()
    assert cleaner.feed("\udc00x") == "\ufffdx"


async def test_stop_on_a_reply_whose_process_died_ends_it_at_once(connect, owner, conversation):
    orphan = await database_sync_to_async(append)(
        conversation, role="assistant", status="streaming", content="Half a sen"
    )
    socket, _ = await connect(owner, conversation.pk)
    pressed = time.monotonic()
    await socket.send_to(text_data=json.dumps({"action": "stop"}))
    final = await receive_until(socket, is_final(orphan.pk), within=5)
    assert time.monotonic() - pressed < actions.recovery.STOP_ACK_TIMEOUT + 1
    assert "status-stopped" in final and "Half a sen" in final
    await database_sync_to_async(orphan.refresh_from_db)()
    assert orphan.status == "stopped" and orphan.content == "Half a sen" and orphan.taken_over


async def test_the_supervisor_takes_over_a_stale_reply_and_tells_open_tabs(
    connect, owner, conversation, settings
):
    settings.REPLY_SUPERVISOR = True
    settings.REPLY_HEARTBEAT_INTERVAL = 0.1
    orphan = await database_sync_to_async(append)(
        conversation, role="assistant", status="streaming", content="So far"
    )
    await database_sync_to_async(Message.objects.filter(pk=orphan.pk).update)(
        updated_at=timezone.now() - timedelta(seconds=settings.REPLY_STALE_AFTER + 1)
    )
    socket, _ = await connect(owner, conversation.pk)
    try:
        final = await receive_until(socket, is_final(orphan.pk), within=5)
    finally:
        await actions.supervisor.stop()
    assert "status-interrupted" in final and "stopped before it finished" in final


async def test_a_live_reply_is_not_taken_over_by_its_own_process(
    connect, owner, conversation, settings
):
    settings.DEMO_TOKENS_PER_SECOND = 30
    socket, _ = await connect(owner, conversation.pk)
    await _send(socket, "Keep going", "live-1")
    await receive_until(socket, lambda f: 'data-ack="live-1"' in f)
    reply = await database_sync_to_async(conversation.messages.filter(status="streaming").first)()
    await database_sync_to_async(Message.objects.filter(pk=reply.pk).update)(
        updated_at=timezone.now() - timedelta(hours=1)
    )
    assert await database_sync_to_async(actions.take_over_stale_replies)() == 0
    await socket.send_to(text_data=json.dumps({"action": "stop"}))
    await receive_until(socket, is_final(reply.pk))


def test_a_streaming_snapshot_is_cut_into_frames_that_rebuild_the_text():
    text = 'x<&>"' * (FRAME_TEXT_CHARS // 2)  # escaping makes these 1-6 bytes each
    view = MessageView(id=7, role="assistant", status="streaming", content=text, reasoning="r")
    frames = message_frames(view)
    assert len(frames) > 1
    assert all(len(frame.encode()) < 1024 * 1024 for frame in frames)
    transcript = Transcript()
    for frame in frames:
        transcript.apply(frame)
    assert transcript.text(7) == text and transcript.gaps == 0


def test_a_streaming_snapshot_carries_the_rendered_blocks_after_the_text_they_cover():
    text = "A paragraph with *emphasis* & <tags>.\n\n" * 8000  # beyond one frame's text
    settled = SettledMarkdown()
    for end in range(100, len(text) + 100, 100):
        settled.advance(text[:end])
    view = MessageView(
        id=7,
        role="assistant",
        status="streaming",
        content=text,
        settled=tuple(settled.segments),
    )
    frames = message_frames(view)
    assert all(len(frame.encode()) < 1024 * 1024 for frame in frames)
    transcript = Transcript()
    for frame in frames:
        transcript.apply(frame)
    assert transcript.text(7) == text and transcript.gaps == 0
    assert transcript.rendered(7) == (settled.end, "".join(s.html for s in settled.segments))
    assert settled.end > FRAME_TEXT_CHARS


def test_a_finished_reply_too_big_for_a_frame_is_loaded_over_http(client_for, owner, conversation):
    big = Message.objects.create(
        conversation=conversation, role="assistant", content="word " * 400_000
    )
    (frame,) = message_frames(MessageView.from_message(big))
    url = f"/c/{conversation.pk}/m/{big.pk}/"
    assert f'hx-get="{url}"' in frame and len(frame) < 10_000
    response = client_for(owner).get(url)
    assert response.status_code == 200 and response.content.count(b"word") == 400_000


def test_an_outsider_cannot_load_a_message(client_for, teammate, conversation):
    message = conversation.messages.first()
    response = client_for(teammate).get(f"/c/{conversation.pk}/m/{message.pk}/")
    assert response.status_code == 404


async def test_a_socket_rides_out_a_channel_layer_outage_and_catches_up(
    connect, owner, conversation, monkeypatch
):
    from channels.layers import get_channel_layer

    socket, _ = await connect(owner, conversation.pk)
    layer = get_channel_layer()
    real_receive = layer.receive
    failures = {"left": 3}

    async def flaky_receive(channel):
        if failures["left"]:
            failures["left"] -= 1
            await asyncio.sleep(0.01)
            raise ConnectionError("Redis went away")
        return await real_receive(channel)

    monkeypatch.setattr(layer, "receive", flaky_receive)
    await _send(socket, "Through the outage", "outage-1")
    await receive_until(socket, lambda f: 'data-ack="outage-1"' in f)
    reply = await database_sync_to_async(conversation.messages.last)()
    await receive_until(socket, is_final(reply.pk), within=15)
    assert failures["left"] == 0


def test_partial_text_of_every_reply_is_saved_in_one_statement(conversation):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from chat.actions.replies import _store_partials

    first, second, ended = (
        Message.objects.create(conversation=conversation, role="assistant", status=status)
        for status in ("streaming", "streaming", "complete")
    )
    tricky = "100% 'quoted' \"double\" %s %(name)s ; -- ☃ 𝄞"
    touched_before = second.updated_at
    with CaptureQueriesContext(connection) as queries:
        _store_partials(
            [first.pk, second.pk, ended.pk],
            {first.pk: (tricky, "r1"), ended.pk: ("late", "")},
        )
    assert len(queries) == 1
    first.refresh_from_db(), second.refresh_from_db(), ended.refresh_from_db()
    assert (first.content, first.reasoning) == (tricky, "r1")
    assert second.content == "" and second.updated_at > touched_before  # touched only
    assert ended.content == ""  # ended meanwhile: left alone


def test_partial_text_of_many_replies_is_saved_a_thousand_replies_a_statement(
    conversation, monkeypatch
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from chat.actions import replies

    monkeypatch.setattr(replies, "PARTIALS_PER_STATEMENT", 2)
    streaming = [
        Message.objects.create(conversation=conversation, role="assistant", status="streaming")
        for _ in range(5)
    ]
    texts = {message.pk: (f"text {i}", f"thought {i}") for i, message in enumerate(streaming)}
    with CaptureQueriesContext(connection) as queries:
        replies._store_partials([message.pk for message in streaming], texts)
    assert len(queries) == 3
    stored = {m.pk: (m.content, m.reasoning) for m in Message.objects.filter(pk__in=texts)}
    assert stored == texts


async def test_a_shutdown_that_overruns_logs_what_it_is_still_waiting_for():
    import logging

    from chat.lifecycle import watch_shutdown

    reports: list[str] = []
    repeated = asyncio.Event()

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            reports.append(record.getMessage())
            if len(reports) >= 2:  # again and again until the process exits
                repeated.set()

    async def saving_a_reply() -> None:
        await asyncio.sleep(30)

    logger = logging.getLogger("chat.lifecycle")
    handler = Collect(level=logging.WARNING)
    logger.addHandler(handler)
    stuck = asyncio.create_task(saving_a_reply(), name="reply-42")
    try:
        watch_shutdown(after=0.05)
        await asyncio.wait_for(repeated.wait(), 5)
    finally:
        stuck.cancel()
        logger.removeHandler(handler)
    assert all(report.startswith("Shutdown still waiting") for report in reports)
    assert "reply-42: saving_a_reply (" in reports[0] and "-> sleep (" in reports[0]
