"""Upstream faults that already end well, kept as regression tests with the suite's
invariants: the stored text is what the client saw and a prefix of what the upstream
sent, the reply ends in the right status, and no row is left streaming."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from channels.db import database_sync_to_async

from chat.models import Message
from tests.faults.conftest import assert_clean_logs, upstream_text
from tests.streams import Transcript, is_final, receive_until

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

REPLY_ID = re.compile(r'id="m-(\d+)" class="message assistant status-streaming"')
FAULTS = [
    ("status=429,retry-after=0", "complete"),
    ("status=429", "complete"),
    ("status=503,retry-after=0", "complete"),
    ("status=401", "failed"),
    ("status=400", "failed"),
    ("base-resp=1004", "failed"),
    ("break-after=30", "interrupted"),
    ("malformed-after=20", "complete"),
    ("quirks=no-done+split-think+double-finish", "complete"),
]


@pytest.mark.parametrize(("fault", "status"), FAULTS)
async def test_an_upstream_fault_ends_cleanly_and_loses_nothing(
    connect, owner, conversation, simulator, fast_frames, fault, status
):
    simulator.queue_fault(fault)
    socket, _ = await connect(owner, conversation.pk)
    await socket.send_to(text_data=json.dumps({"action": "send", "message": f"fault {fault}"}))
    transcript = Transcript()
    frame = await receive_until(socket, lambda f: REPLY_ID.search(f) is not None, transcript)
    reply_id = int(REPLY_ID.search(frame)[1])
    await receive_until(socket, is_final(reply_id), transcript, within=30)
    reply = await database_sync_to_async(Message.objects.get)(pk=reply_id)
    assert reply.status == status, reply.error
    assert reply.content.startswith(transcript.text(reply_id))
    sent = upstream_text(simulator.requests[-1])
    if status != "failed" and "quirks" not in fault:
        assert sent.startswith(reply.content) or reply.content.strip() == sent.strip()
    if status == "interrupted":
        assert reply.content == sent  # every character before the break was kept
    streaming = await database_sync_to_async(Message.objects.filter(status="streaming").count)()
    assert streaming == 0


async def test_replies_outlive_the_upstream_closing_their_kept_connection(site_factory, simulator):
    """Daphne keeps its upstream connection after a reply (UPSTREAM_KEEPALIVE_SECONDS);
    the next reply uses it. The upstream closes it once it has been idle a while, as
    servers do: the reply after that opens another, and nothing is lost either way."""
    simulator.idle_timeout = 1.0
    site = site_factory(AUTO_TITLE="false")
    server, conversation, socket = await site.one_chat()
    before = len(simulator.requests)
    reply_id = 0
    for question, pause in (("First?", 0.0), ("Second?", 0.0), ("Third?", 1.5)):
        await asyncio.sleep(pause)
        await socket.send(question)
        reply_id = await socket.reply_id(after=reply_id)
        await socket.final(reply_id)
        stored = site.row(reply_id)
        assert stored["status"] == "complete", stored["error"]
        assert stored["content"] == upstream_text(simulator.requests[-1])

    first, second, third = (request.connection for request in simulator.requests[before:])
    assert second == first  # kept, and used again
    assert third > second  # the upstream had closed it: a new one
    assert_clean_logs(site)
