"""The chat socket: thin. It checks access, joins the conversation's group, forwards
frames, and hands every request to chat.actions."""

from __future__ import annotations

import json
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.http import Http404

from chat import actions, events
from chat.access import access_conversation
from chat.rendering import composer_error_frame, composer_ok_frame

logger = logging.getLogger(__name__)


class ConversationConsumer(AsyncWebsocketConsumer):
    conversation_id: int
    group: str

    async def connect(self) -> None:
        self.conversation_id = int(self.scope["url_route"]["kwargs"]["conversation_id"])
        if not await self._may_access():
            await self.close()  # refused during the handshake: HTTP 403
            return
        self.group = events.conversation_group(self.conversation_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self._catch_up()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            payload = json.loads(text_data or "")
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            await self.send(text_data=composer_error_frame("That request could not be read."))
            return
        action = payload.get("action", "send")
        if action == "send":
            await self._send_message(str(payload.get("message", "")))
        elif action == "stop":
            await actions.stop_reply(conversation_id=self.conversation_id)
        elif action == "sync":
            await self._catch_up()

    async def chat_frame(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["html"])

    async def _send_message(self, text: str) -> None:
        try:
            sent = await database_sync_to_async(actions.send_message)(
                user=self.scope["user"], conversation_id=self.conversation_id, text=text
            )
        except actions.ActionError as error:
            await self.send(text_data=composer_error_frame(str(error)))
            return
        except Http404:
            await self.close()
            return
        await self.send(text_data=composer_ok_frame())
        actions.start_reply(reply_id=sent.reply_id)

    async def _catch_up(self) -> None:
        """After (re)connecting: the latest reply as stored, then the live tail."""
        html = await database_sync_to_async(actions.latest_reply_html)(
            conversation_id=self.conversation_id
        )
        if html:
            await self.send(text_data=html)
        await actions.request_snapshot(
            conversation_id=self.conversation_id, reply_to=self.channel_name
        )

    @database_sync_to_async
    def _may_access(self) -> bool:
        try:
            access_conversation(self.scope["user"], self.conversation_id)
        except Http404:
            return False
        return True
