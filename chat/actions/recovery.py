"""Reaching a reply wherever it runs, and taking over the ones whose process died.

Every process touches the rows of the replies it writes (``REPLY_HEARTBEAT_INTERVAL``).
A streaming reply untouched for ``REPLY_STALE_AFTER`` lost its process: the supervisor
in any process ends it as interrupted, with the text it had saved, and publishes its
final frame so every tab stops showing "writing…".
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_noop

from chat import events
from chat.actions.common import DB_ERRORS, ProcessLoop, retry_db
from chat.actions.conversations import speaker_for
from chat.actions.replies import live_reply, live_reply_ids, publish_final, send_snapshot
from chat.models import Conversation, Message
from chat.rendering import MessageView, message_frames
from chat.tree import versions_of

logger = logging.getLogger("chat.actions")

#: How long Stop waits for the process writing a reply to answer before it decides
#: that process is gone and ends the reply itself.
STOP_ACK_TIMEOUT = 1.0
# Stored in English; pages translate it when they show it.
ORPHAN_ERROR = gettext_noop(
    "The server writing this reply stopped before it finished (a restart or a crash)."
)


async def stop_reply(*, conversation_id: int) -> bool:
    """Stop the running reply of a conversation, wherever its process is.

    The caller has already checked access to the conversation. When no process answers
    for the reply within STOP_ACK_TIMEOUT, it is an orphan: it ends here and now.
    """
    reply_id = await _streaming_reply_id(conversation_id)
    if reply_id is None:
        return False
    live = live_reply(reply_id)
    if live is not None:
        live.stop()
        return True
    layer = get_channel_layer()
    acked = False
    try:
        ack_channel = await layer.new_channel()
        if await events.publish(
            events.reply_group(reply_id), {"type": "reply.stop", "ack_to": ack_channel}
        ):
            async with asyncio.timeout(STOP_ACK_TIMEOUT):
                await layer.receive(ack_channel)
            acked = True
    except (TimeoutError, *events.LAYER_ERRORS):
        pass
    if not acked:
        logger.info("No process answered Stop for reply %s: ending it here", reply_id)
        await database_sync_to_async(take_over_reply)(reply_id, status=Message.Status.STOPPED)
    return True


async def request_snapshot(*, conversation_id: int, reply_to: str) -> None:
    """Send ``reply_to`` the live reply as it stands, from whichever process runs it."""
    reply_id = await _streaming_reply_id(conversation_id)
    if reply_id is not None:
        await request_reply_snapshot(reply_id=reply_id, reply_to=reply_to)


async def request_reply_snapshot(*, reply_id: int, reply_to: str) -> None:
    """Send ``reply_to`` that reply as published so far, if it is still running."""
    live = live_reply(reply_id)
    if live is not None:
        await send_snapshot(live, reply_to)
        return
    await events.publish(events.reply_group(reply_id), {"type": "reply.sync", "reply_to": reply_to})


@database_sync_to_async
def _streaming_reply_id(conversation_id: int) -> int | None:
    return (
        Message.objects.filter(conversation_id=conversation_id, status=Message.Status.STREAMING)
        .values_list("pk", flat=True)
        .first()
    )


def latest_reply_frames(*, conversation_id: int) -> list[str]:
    """The reply at the end of the current branch as stored, for a socket that
    (re)connects, in frames that each fit the socket."""
    conversation = (
        Conversation.objects.select_related("persona", "current_leaf")
        .filter(pk=conversation_id)
        .first()
    )
    reply = conversation.current_leaf if conversation is not None else None
    if reply is None or reply.role != Message.Role.ASSISTANT:
        return []
    view = MessageView.from_message(
        reply, speaker=speaker_for(conversation), versions=versions_of(reply)
    )
    return message_frames(view)


def take_over_reply(
    reply_id: int,
    *,
    status: str = Message.Status.INTERRUPTED,
    error: str = "",
    stale_before: object = None,
) -> bool:
    """End a streaming reply that no live process owns, keeping its saved text."""
    with transaction.atomic():
        rows = Message.objects.select_for_update(of=("self",)).filter(
            pk=reply_id, status=Message.Status.STREAMING
        )
        if stale_before is not None:
            rows = rows.filter(updated_at__lt=stale_before)
        reply = rows.select_related("conversation__persona").first()
        if reply is None:
            return False
        reply.status = status
        reply.error = error
        reply.taken_over = True
        reply.save(update_fields=["status", "error", "taken_over", "updated_at"])
        publish_final(reply)
    return True


def take_over_stale_replies(*, conversation_id: int | None = None) -> int:
    """Take over every streaming reply whose process stopped touching it."""
    cutoff = timezone.now() - timedelta(seconds=settings.REPLY_STALE_AFTER)
    stale = Message.objects.filter(status=Message.Status.STREAMING, updated_at__lt=cutoff)
    if conversation_id is not None:
        stale = stale.filter(conversation_id=conversation_id)
    ours = live_reply_ids()
    taken = 0
    for reply_id in stale.values_list("pk", flat=True):
        if reply_id in ours:
            continue  # alive here; its saves are failing, and it will finish itself
        if take_over_reply(reply_id, error=ORPHAN_ERROR, stale_before=cutoff):
            logger.warning("Took over reply %s: its process stopped heartbeating", reply_id)
            taken += 1
    return taken


class Supervisor(ProcessLoop):
    """The per-process loop that takes over orphaned replies, every heartbeat."""

    name = "parley-reply-supervisor"

    def enabled(self) -> bool:
        return bool(settings.REPLY_SUPERVISOR)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(settings.REPLY_HEARTBEAT_INTERVAL)
            try:
                await retry_db(take_over_stale_replies, 0)
            except DB_ERRORS as error:
                logger.warning("Orphan check skipped, database unavailable: %s", error)
            except Exception:
                logger.exception("Orphan check failed")


supervisor = Supervisor()
