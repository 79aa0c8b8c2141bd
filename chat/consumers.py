"""The chat socket: thin. It checks access, joins the conversation's group, forwards
frames, and hands every request to chat.actions.

It rides out a channel-layer outage instead of dying with it: receiving retries with
backoff and, once the layer answers, re-joins the group (Redis may have restarted and
forgotten it) and catches up on what was missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from django.http import Http404
from django.utils import translation
from django.utils.translation import gettext as _

from chat import actions, events, metrics
from chat.access import access_conversation, socket_user
from chat.actions.sending import CLIENT_ID
from chat.delivery import SocketDelivery, Verdict
from chat.i18n import language_of
from chat.models import User
from chat.provisional import HEAD_START, ProvisionalReply
from chat.rendering import composer_error_frame, composer_ok_frame

logger = logging.getLogger(__name__)

# Close codes the browser's websocket extension reconnects after (with backoff).
CLOSE_SERVICE_RESTART = 1012
# Access ended (logged out, deactivated): the browser must not reconnect by itself.
CLOSE_POLICY = 1008


_NOT_ALLOWED = object()


def _message_id(payload: dict[str, Any]) -> int | None:
    """Buttons send ids as numbers, forms as strings."""
    value = payload.get("message_id")
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 19:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


async def pump(
    receive: Callable[[], Awaitable[dict[str, Any]]],
    layer_receive: Callable[[], Awaitable[dict[str, Any]]],
    dispatch: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    """Hand ``dispatch`` what the client sends and what the channel layer brings, one
    message at a time, until a handler raises (``StopConsumer`` on disconnect).

    Channels' loop (``await_many_dispatch``) starts a task and an ``asyncio.wait`` for
    every message; at 150 streams, with twenty frames a second each, that was several
    per cent of the event loop. Here one task reads the layer for the socket's whole life and
    dispatches each frame itself; only the client's messages (sends, acknowledgements)
    take the slower way.
    """
    turn = asyncio.Lock()

    async def from_layer() -> None:
        while True:
            message = await layer_receive()
            async with turn:
                await dispatch(message)

    reader = asyncio.create_task(from_layer())
    incoming: asyncio.Future[dict[str, Any]] | None = None
    try:
        while True:
            if incoming is None:
                incoming = asyncio.ensure_future(receive())
            await asyncio.wait({incoming, reader}, return_when=asyncio.FIRST_COMPLETED)
            if reader.done():
                reader.result()  # what a frame's handler raised: the reader never returns
                return
            message, incoming = incoming.result(), None
            async with turn:
                await dispatch(message)
    finally:
        pending = [task for task in (incoming, reader) if task is not None]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


class ConversationConsumer(AsyncWebsocketConsumer):
    conversation_id: int
    group: str = ""
    groups_joined: tuple[str, ...] = ()
    delivery: SocketDelivery
    #: This side closed the socket: nothing more goes out on it.
    closing = False
    #: Replies this socket shows provisionally until their own frames arrive.
    provisional: dict[int, ProvisionalReply]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # Channels creates this socket's channel (a Redis subscription) before connect():
        # while Redis is down, refuse the handshake (HTTP 403, and the browser retries)
        # instead of failing with a 500.
        try:
            # Everything this socket renders, and the replies it starts, speak its
            # page's language (translation state follows the task's context).
            with translation.override(language_of(scope)):
                await self._serve(scope, receive, send)
        except events.LAYER_ERRORS as error:
            logger.warning("Socket refused or closed, channel layer unavailable: %s", error)
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": CLOSE_SERVICE_RESTART})

    async def _serve(self, scope: Any, receive: Any, send: Any) -> None:
        """Channels' ``AsyncConsumer.__call__``, with ``pump`` for its dispatch loop
        and the retrying layer receive below for the layer's own."""
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = await self.channel_layer.new_channel()
        self.base_send = send
        with contextlib.suppress(StopConsumer):  # the client went away
            await pump(receive, self._resilient_receive, self.dispatch)

    async def _resilient_receive(self) -> dict[str, Any]:
        return await events.receive_with_retry(self.channel_name, on_recover=self._rejoin)

    async def _rejoin(self) -> None:
        if self.groups_joined:
            for group in self.groups_joined:
                await self.channel_layer.group_add(group, self.channel_name)
            await self._catch_up()

    async def connect(self) -> None:
        self.conversation_id = int(self.scope["url_route"]["kwargs"]["conversation_id"])
        self.provisional = {}
        self.delivery = SocketDelivery(
            lag_limit=settings.SOCKET_LAG_LIMIT, window=settings.SOCKET_SEND_WINDOW
        )
        # Refused during the handshake (HTTP 403); the browser retries with backoff.
        if not actions.accepting_replies() or not await self._may_access():
            await self.close()
            return
        self.group = events.conversation_group(self.conversation_id)
        # The conversation's frames, and the signals that end this socket's access.
        groups = (
            self.group,
            events.user_group(self.scope["user"].pk),
            events.session_group(self.scope["session"].session_key or ""),
        )
        try:
            for group in groups:
                await self.channel_layer.group_add(group, self.channel_name)
        except events.LAYER_ERRORS as error:
            logger.warning("Refused a socket, channel layer unavailable: %s", error)
            await self.close()
            return
        self.groups_joined = groups
        await self.accept()
        metrics.WEBSOCKETS.inc()
        await self._catch_up()

    async def disconnect(self, code: int) -> None:
        for shown in self.provisional.values():
            shown.halt()
        if self.groups_joined:
            metrics.WEBSOCKETS.dec()
        # If the layer is down, the memberships expire on their own.
        with contextlib.suppress(*events.LAYER_ERRORS):
            for group in self.groups_joined:
                await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            payload = json.loads(text_data or "")
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            await self.send(text_data=composer_error_frame(_("That request could not be read.")))
            return
        action = payload.get("action", "send")
        if action == "ack":
            # The hot path of a reading client: no database, no access check.
            await self._acknowledged(payload.get("received"))
            return
        if action in self.STARTS:
            # Each re-checks access in the same database hop as its work.
            await self._start_exchange(action, payload)
            return
        if not await self._still_allowed():
            await self.close(code=CLOSE_POLICY)
            return
        if action == "stop":
            await actions.stop_reply(conversation_id=self.conversation_id)
        elif action == "sync":
            await self._catch_up()
        elif action == "switch":
            await self._run(actions.switch_branch, message_id=_message_id(payload))
        else:
            await self.send(text_data=composer_error_frame(_("That request is not supported.")))

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' ``AsyncConsumer.dispatch`` without its database hop.

        Channels closes old connections on the database thread before every handler:
        a hop through the one thread every socket's stores share, for each send and
        each acknowledgement (frames skipped it already). Every handler here that
        touches the database does so through ``database_sync_to_async``, which closes
        old connections on that thread before and after its work, so the hop only made
        each message wait its turn behind everyone's stores (and the interpreter lock's
        switch interval) before its handler could start.
        """
        if message.get("type") == "chat.frame":  # the hot path: no lookup
            await self.chat_frame(message)
            return
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def chat_frame(self, event: dict[str, Any]) -> None:
        if event.get("snapshot"):
            self.delivery.snapshot(event)
        elif event.get("final"):
            self.delivery.finished(event)
        elif "starts" in event:
            verdict = self.delivery.delta(event, time.time())
            if verdict is Verdict.RESYNC:
                await actions.request_reply_snapshot(
                    reply_id=event["message_id"], reply_to=self.channel_name
                )
            if verdict is not Verdict.FORWARD:
                return
        else:
            await self.send(text_data=event["html"])  # articles, titles: no reply text
            return
        if self.provisional and event["message_id"] in self.provisional:
            self.provisional.pop(event["message_id"]).halt()  # its own text is here
        await self.send(text_data=event["html"])

    async def send(
        self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False
    ) -> None:
        if text_data:
            self.delivery.count_sent(len(text_data))
        await super().send(text_data=text_data, bytes_data=bytes_data, close=close)

    async def _acknowledged(self, received: Any) -> None:
        if not isinstance(received, int) or isinstance(received, bool) or received < 0:
            return
        for reply_id in self.delivery.acknowledge(received, time.time()):
            await actions.request_reply_snapshot(reply_id=reply_id, reply_to=self.channel_name)

    async def access_revoked(self, event: dict[str, Any]) -> None:
        await self.close(code=CLOSE_POLICY)

    #: Socket actions that store a new exchange and start its reply.
    STARTS = {
        "send": actions.send_message,
        "edit": actions.edit_message,
        "regenerate": actions.regenerate_reply,
    }

    async def _start_exchange(self, action: str, payload: dict[str, Any]) -> None:
        text, client_id = payload.get("message", ""), payload.get("client_id") or ""
        if not isinstance(text, str) or not isinstance(client_id, str):
            await self.send(text_data=composer_error_frame(_("Type a message first.")))
            return
        if not actions.accepting_replies():
            # Not acknowledged: the browser sends it again to whichever process it
            # reconnects to.
            await self.close(code=CLOSE_SERVICE_RESTART)
            return
        if action == "send":
            arguments: dict[str, Any] = {"text": text, "client_id": client_id}
        elif action == "edit":
            arguments = {"text": text, "message_id": _message_id(payload)}
        else:
            arguments = {"message_id": _message_id(payload)}
        # The upstream request starts now if this process can tell what it will be; the
        # reply adopts it once the message is stored (chat.actions.early). Meanwhile
        # this tab shows it provisionally (chat.provisional).
        early = provisional = None
        adopted = False
        if action == "send":
            early = actions.start_early(conversation_id=self.conversation_id, text=text)
        if early is not None and CLIENT_ID.fullmatch(client_id):
            provisional = ProvisionalReply(self._send_text, client_id=client_id, early=early)
        try:
            if provisional is not None:
                await provisional.first_words(within=HEAD_START)
            async with actions.database_turn():  # stores take turns with reply ends
                sent = await self._run(self.STARTS[action], refusal_id=client_id, **arguments)
            if sent is None:
                return
            # The new articles go out before the reply's first delta can.
            await events.outbox_flushed()
            if not sent.duplicate:
                actions.start_reply(reply_id=sent.reply_id, context=sent.context, early=early)
                adopted, early = early is not None and early.adopted, None
            if provisional is not None and adopted:
                # It shows the text until the stored reply's first frame gets here.
                self.provisional[sent.reply_id] = provisional
            elif provisional is not None:
                # Before the acknowledgement, which has the page show the stored pair.
                await provisional.take_back()
            provisional = None
            await self.send(
                text_data=composer_ok_frame(
                    client_id=client_id, message_id=sent.user_message_id, reply_id=sent.reply_id
                )
            )
        finally:
            if early is not None:
                early.drop()
            if provisional is not None:
                await provisional.take_back()

    async def _send_text(self, html: str) -> None:
        if not self.closing:
            await self.send(text_data=html)

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        self.closing = True
        await super().close(code=code, reason=reason)

    async def _run(
        self, action: Callable[..., Any], *, refusal_id: str = "", **arguments: Any
    ) -> Any:
        """Run a use case for this socket's user and conversation in one database hop,
        access check included. A refusal goes back as an error frame naming
        ``refusal_id`` (the browser's message id); returns None when refused."""
        try:
            result = await self._call_if_allowed(action, arguments)
        except actions.ActionError as error:
            await self.send(text_data=composer_error_frame(str(error), client_id=refusal_id))
            return None
        except Http404:
            await self.close()
            return None
        if result is _NOT_ALLOWED:
            await self.close(code=CLOSE_POLICY)
            return None
        return result

    @database_sync_to_async
    def _call_if_allowed(self, action: Callable[..., Any], arguments: dict[str, Any]) -> Any:
        # Every use case run here fetches the conversation as the user's (or 404s).
        user = self._current_user(check_conversation=False)
        if user is None:
            return _NOT_ALLOWED
        return action(user=user, conversation_id=self.conversation_id, **arguments)

    async def _catch_up(self) -> None:
        """After (re)connecting: the latest reply as stored, then the live tail."""
        frames = await database_sync_to_async(actions.latest_reply_frames)(
            conversation_id=self.conversation_id
        )
        for html in frames:
            await self.send(text_data=html)
        await actions.request_snapshot(
            conversation_id=self.conversation_id, reply_to=self.channel_name
        )

    @database_sync_to_async
    def _still_allowed(self) -> bool:
        return self._allowed()

    def _allowed(self, *, check_conversation: bool = True) -> bool:
        return self._current_user(check_conversation=check_conversation) is not None

    def _current_user(self, *, check_conversation: bool = True) -> User | None:
        """The socket's user as they are now, if they may still act here."""
        user = self.scope["user"]
        if not user.is_authenticated:
            return None
        return socket_user(
            user_id=user.pk,
            session_key=self.scope["session"].session_key,
            conversation_id=self.conversation_id,
            check_conversation=check_conversation,
        )

    @database_sync_to_async
    def _may_access(self) -> bool:
        user = self.scope["user"]
        try:
            conversation = access_conversation(user, self.conversation_id)
        except Http404:
            return False
        actions.prepare_next_turn(user, conversation)
        return True
