"""The chat socket through the real ASGI stack: origin check, session auth, routing."""

from __future__ import annotations

import json
import re
import time

import pytest
from channels.db import database_sync_to_async

from chat import actions, markdown, rendering
from chat.markdown import render_markdown
from chat.models import Message
from tests.streams import Transcript, has_delta, is_final, receive_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

REPLY_ID = re.compile(r'id="m-(\d+)" class="message assistant status-streaming"')


async def _send(communicator, text="Where are we headed?"):
    await communicator.send_to(text_data=json.dumps({"action": "send", "message": text}))


async def _reply_id(communicator, transcript=None) -> int:
    frame = await receive_until(communicator, lambda f: REPLY_ID.search(f) is not None, transcript)
    return int(REPLY_ID.search(frame).group(1))


@database_sync_to_async
def _message(pk: int) -> Message:
    return Message.objects.get(pk=pk)


async def test_the_reply_streams_to_the_owner(connect, owner, conversation, fast_frames):
    socket, connected = await connect(owner, conversation.pk)
    assert connected
    await _send(socket)
    transcript = Transcript()
    reply_id = await _reply_id(socket, transcript)
    await receive_until(socket, has_delta, transcript)
    final = await receive_until(socket, is_final(reply_id), transcript)
    assert "status-complete" in final and "<pre><code" in final
    message = await _message(reply_id)
    assert message.status == "complete"
    # Deltas carried the text as it arrived; the final frame carries all of it, rendered.
    assert message.content.startswith(transcript.text(reply_id)) and transcript.text(reply_id)
    assert message.reasoning.startswith(transcript.text(reply_id, "reasoning"))
    assert "Where are we headed?" in message.content and "we headed?”." in final
    # The first message names the conversation, live, in the header and the sidebar.
    assert any(
        '<h1 id="chat-title" hx-swap-oob="true">Where are we headed?</h1>' in frame
        and 'id="conversation-link-' in frame
        for frame in transcript.frames
    )
    assert message.output_tokens and message.time_to_first_token_ms is not None


async def test_stop_keeps_the_partial_reply(connect, owner, conversation, simulator, settings):
    settings.DEMO_TOKENS_PER_SECOND = 20
    socket, _ = await connect(owner, conversation.pk)
    await _send(socket)
    transcript = Transcript()
    reply_id = await _reply_id(socket, transcript)
    await receive_until(socket, lambda f: transcript.text(reply_id) != "", transcript)
    stopped_at = time.monotonic()
    await socket.send_to(text_data=json.dumps({"action": "stop"}))
    final = await receive_until(socket, is_final(reply_id), transcript)
    assert "status-stopped" in final
    message = await _message(reply_id)
    assert message.status == "stopped"
    assert message.content and "Received:" not in message.content
    assert message.content.startswith(transcript.text(reply_id))
    upstream = simulator.requests[-1]
    assert upstream.disconnected_at is not None
    assert upstream.disconnected_at - stopped_at < 0.25


@pytest.mark.parametrize("who", ["teammate", "outsider", "anonymous"])
async def test_others_are_refused_on_the_socket(connect, teammate, outsider, conversation, who):
    user = {"teammate": teammate, "outsider": outsider, "anonymous": None}[who]
    _, connected = await connect(user, conversation.pk)
    assert not connected


async def test_a_bad_origin_is_refused(connect, owner, conversation):
    _, connected = await connect(owner, conversation.pk, origin="http://evil.example")
    assert not connected


async def test_a_second_socket_sees_the_stream_live(connect, owner, conversation, fast_frames):
    first, _ = await connect(owner, conversation.pk)
    second, _ = await connect(owner, conversation.pk)
    await second.receive_nothing(timeout=0.2)  # drain catch-up frames
    await _send(first)
    transcript = Transcript()
    reply_id = await _reply_id(second, transcript)
    await receive_until(second, has_delta, transcript)
    await receive_until(second, is_final(reply_id), transcript)
    assert (await _message(reply_id)).content.startswith(transcript.text(reply_id))
    assert transcript.gaps == 0


async def test_closing_the_socket_does_not_stop_the_reply(connect, owner, conversation):
    socket, _ = await connect(owner, conversation.pk)
    await _send(socket)
    reply_id = await _reply_id(socket)
    await socket.disconnect()
    await actions.wait_for_running_replies()
    message = await _message(reply_id)
    assert message.status == "complete" and "Received:" in message.content


async def test_reconnecting_mid_stream_resumes_without_gap_or_duplicate(
    connect, owner, conversation, settings
):
    settings.DEMO_TOKENS_PER_SECOND = 60
    first, _ = await connect(owner, conversation.pk)
    await _send(first)
    reply_id = await _reply_id(first)
    watcher = Transcript()
    await receive_until(first, lambda f: len(watcher.text(reply_id)) > 40, watcher)
    # A new tab (or a reload): the row as stored, then the live snapshot, then deltas.
    late, _ = await connect(owner, conversation.pk)
    resumed = Transcript()
    await receive_until(late, is_final(reply_id), resumed, within=20)
    message = await _message(reply_id)
    assert message.status == "complete"
    shown = resumed.shown[f"m-{reply_id}-text"]
    # It picked up mid-reply, and every text it showed continued the reply exactly: a
    # delta that raced ahead of the snapshot was dropped, never shown out of place.
    caught_up = next(text for text in shown if text)
    assert 40 < len(caught_up) < len(message.content)  # the text so far, at once
    assert all(message.content.startswith(text) for text in shown)
    assert [len(text) for text in shown] == sorted(len(text) for text in shown)
    assert len(shown) > 3  # it kept streaming after the snapshot


async def test_an_upstream_error_ends_the_reply_with_a_clear_message(
    connect, owner, conversation, simulator
):
    simulator.queue_fault("status=401")
    socket, _ = await connect(owner, conversation.pk)
    await _send(socket)
    reply_id = await _reply_id(socket)
    final = await receive_until(socket, is_final(reply_id))
    assert "status-failed" in final and "rejected the API key" in final
    assert (await _message(reply_id)).status == "failed"


async def test_a_broken_stream_keeps_the_partial_text(connect, owner, conversation, simulator):
    requests_before = len(simulator.requests)
    simulator.queue_fault("break-after=40")
    socket, _ = await connect(owner, conversation.pk)
    await _send(socket)
    reply_id = await _reply_id(socket)
    final = await receive_until(socket, is_final(reply_id))
    message = await _message(reply_id)
    assert message.status == "interrupted" and message.content
    assert "ended before the reply finished" in final
    # Text had reached the user: no retry, which would repeat or contradict it.
    assert len(simulator.requests) == requests_before + 1


async def test_a_rate_limit_before_the_first_token_is_retried(
    connect, owner, conversation, simulator
):
    simulator.queue_fault("status=429,retry-after=0")
    socket, _ = await connect(owner, conversation.pk)
    await _send(socket)
    reply_id = await _reply_id(socket)
    await receive_until(socket, is_final(reply_id))
    assert (await _message(reply_id)).status == "complete"


async def test_retries_stop_after_two_and_the_reply_fails_clearly(
    connect, owner, conversation, simulator
):
    requests_before = len(simulator.requests)
    for _ in range(3):
        simulator.queue_fault("status=529,retry-after=0")
    socket, _ = await connect(owner, conversation.pk)
    await _send(socket)
    reply_id = await _reply_id(socket)
    final = await receive_until(socket, is_final(reply_id))
    assert "status-failed" in final and "overloaded" in final
    assert len(simulator.requests) == requests_before + 3


async def test_an_empty_message_is_refused_and_nothing_is_stored(connect, owner, conversation):
    socket, _ = await connect(owner, conversation.pk)
    await _send(socket, "   ")
    await receive_until(socket, lambda f: "composer-error" in f and "Type a message" in f)
    assert not await database_sync_to_async(Message.objects.filter(role="user").exists)()


async def test_a_second_send_while_streaming_is_refused(connect, owner, conversation, settings):
    settings.DEMO_TOKENS_PER_SECOND = 30
    socket, _ = await connect(owner, conversation.pk)
    await _send(socket)
    await _reply_id(socket)
    await _send(socket, "And another thing")
    await receive_until(socket, lambda f: "still being written" in f)
    await socket.send_to(text_data=json.dumps({"action": "stop"}))


async def test_garbage_on_the_socket_gets_an_error_not_a_crash(connect, owner, conversation):
    socket, _ = await connect(owner, conversation.pk)
    await socket.send_to(text_data="{not json")
    await receive_until(socket, lambda f: "could not be read" in f)
    await socket.send_to(text_data=json.dumps({"action": "sync"}))


async def test_finished_blocks_arrive_rendered_while_the_reply_streams(
    connect, owner, conversation, fast_frames, monkeypatch
):
    fast_frames.REPLY_SETTLE_INTERVAL = 0  # the test reply streams in well under a second
    reused: list[int] = []

    def render_after(text, *, settled_html, settled_end):  # type: ignore[no-untyped-def]
        reused.append(settled_end)
        return markdown.render_markdown_after(
            text, settled_html=settled_html, settled_end=settled_end
        )

    monkeypatch.setattr(rendering, "render_markdown_after", render_after)
    socket, _ = await connect(owner, conversation.pk)
    await _send(socket, "Show me some code")
    transcript = Transcript()
    reply_id = await _reply_id(socket, transcript)
    final = await receive_until(socket, is_final(reply_id), transcript)
    message = await _message(reply_id)
    end, rendered = transcript.rendered(reply_id)
    assert 0 < end < len(message.content) and transcript.gaps == 0
    assert rendered == render_markdown(message.content[:end])
    # The final render begins with exactly what was shown: nothing settled moves. It
    # reuses those blocks and is what a reload shows.
    assert f'<div class="body markdown">{rendered}' in final
    assert f'<div class="body markdown">{render_markdown(message.content)}</div>' in final
    assert reused == [end]
