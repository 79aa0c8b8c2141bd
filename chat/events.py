"""Channel-layer group names and event publishing.

Events are plain dicts that carry rendered HTML and ids, never model instances. In
DEBUG they round-trip through JSON here, so a payload that could not cross Redis fails
at the call site rather than in production.
"""

from __future__ import annotations

import json
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction


def conversation_group(conversation_id: int) -> str:
    return f"conversation.{conversation_id}"


def reply_group(message_id: int) -> str:
    """Where a running reply listens for stop and snapshot requests."""
    return f"reply.{message_id}"


def frame(html: str, **ids: int) -> dict[str, Any]:
    return {"type": "chat.frame", "html": html, **ids}


def _checked(event: dict[str, Any]) -> dict[str, Any]:
    if settings.DEBUG:
        event = json.loads(json.dumps(event))
    return event


async def publish(group: str, event: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(group, _checked(event))


async def send_to(channel: str, event: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is not None:
        await layer.send(channel, _checked(event))


def publish_on_commit(group: str, event: dict[str, Any]) -> None:
    """From sync code: publish once the surrounding transaction commits."""
    event = _checked(event)
    transaction.on_commit(lambda: async_to_sync(publish)(group, event))
