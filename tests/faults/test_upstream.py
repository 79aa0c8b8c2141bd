"""Upstream faults that already end well, kept as regression tests with the suite's
invariants: the stored text is what the client saw and a prefix of what the upstream
sent, the reply ends in the right status, and no row is left streaming."""

from __future__ import annotations

import json
import re

import pytest
from channels.db import database_sync_to_async

from chat.models import Message
from tests.faults.conftest import upstream_text
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
