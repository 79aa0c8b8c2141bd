"""Sending a message: store it with an empty streaming reply, once."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from chat import events
from chat.access import access_conversation
from chat.actions.common import ActionError
from chat.actions.conversations import prepare_request, speaker_for, title_from
from chat.actions.recovery import take_over_stale_replies
from chat.models import Conversation, Message, User
from chat.rendering import MessageView, append_messages_frame, title_frames
from chat.text import clean_text
from providers import registry
from providers.clients.errors import LimitExceededError

MAX_MESSAGE_CHARS = 32_000
CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class SentMessage:
    conversation_id: int
    user_message_id: int
    reply_id: int
    #: The browser had sent this message before (same client id): nothing new was stored.
    duplicate: bool = False


def send_message(
    *, user: User, conversation_id: int, text: str, client_id: str = ""
) -> SentMessage:
    """Store the user's message and an empty streaming reply, atomically.

    ``client_id`` is the browser's id for the message: sending the same id again (after
    a dropped socket, say) returns the message already stored instead of a second one.
    """
    if client_id and not CLIENT_ID.fullmatch(client_id):
        raise ActionError("That message could not be read. Reload the page and try again.")
    text = clean_text(text).strip()
    conversation = access_conversation(user, conversation_id)
    if client_id:
        earlier = _already_sent(conversation, client_id)
        if earlier is not None:
            return earlier
    if not text:
        raise ActionError("Type a message first.")
    if len(text) > MAX_MESSAGE_CHARS:
        raise ActionError(f"Messages are limited to {MAX_MESSAGE_CHARS:,} characters.")
    option = registry.get_model(conversation.model)
    if option is None:
        raise ActionError("This conversation's model is no longer available. Pick another one.")
    take_over_stale_replies(conversation_id=conversation.pk)
    history = [*conversation.messages.all(), Message(role=Message.Role.USER, content=text)]
    try:
        prepare_request(conversation, option, history)
    except LimitExceededError as error:
        raise ActionError(str(error)) from None
    try:
        return _store(conversation, text, client_id)
    except IntegrityError:
        # The same message arrived twice at once (two sockets): the other one stored it.
        earlier = _already_sent(conversation, client_id) if client_id else None
        if earlier is None:
            raise
        return earlier


def _store(conversation: Conversation, text: str, client_id: str) -> SentMessage:
    with transaction.atomic():
        # Lock the conversation so two tabs cannot start two replies at once.
        conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
        if conversation.messages.filter(status=Message.Status.STREAMING).exists():
            raise ActionError("A reply is still being written. Wait for it or press Stop.")
        user_message = Message.objects.create(
            conversation=conversation, role=Message.Role.USER, content=text, client_id=client_id
        )
        reply = Message.objects.create(
            conversation=conversation,
            role=Message.Role.ASSISTANT,
            status=Message.Status.STREAMING,
            model=conversation.model,
        )
        titled = not conversation.title
        if titled:
            conversation.title = title_from(text)
        conversation.save(update_fields=["title", "updated_at"])
        speaker = speaker_for(conversation)
        html = append_messages_frame(
            [
                MessageView.from_message(user_message),
                MessageView.from_message(reply, speaker=speaker),
            ]
        )
        if titled:
            html += title_frames(conversation)
        events.publish_on_commit(
            events.conversation_group(conversation.pk),
            events.frame(html, conversation_id=conversation.pk, message_id=reply.pk),
        )
    return SentMessage(conversation.pk, user_message.pk, reply.pk)


def _already_sent(conversation: Conversation, client_id: str) -> SentMessage | None:
    earlier = (
        conversation.messages.filter(client_id=client_id, role=Message.Role.USER)
        .values_list("pk", flat=True)
        .first()
    )
    if earlier is None:
        return None
    reply_id = (
        conversation.messages.filter(pk__gt=earlier, role=Message.Role.ASSISTANT)
        .values_list("pk", flat=True)
        .first()
    )
    return SentMessage(conversation.pk, earlier, reply_id or 0, duplicate=True)
