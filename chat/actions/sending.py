"""Starting an exchange: a message sent at the end of the branch, a reply regenerated,
a message edited. Each stores its rows with an empty streaming reply, once, under the
conversation's lock, and hands the reply what it needs to start."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from chat import events
from chat.access import access_conversation, may_access
from chat.actions.common import ActionError
from chat.actions.conversations import forget_next_turn, speaker_for, turn_base
from chat.actions.quotas import check_send
from chat.actions.recovery import take_over_stale_replies
from chat.actions.replies import ReplyContext
from chat.actions.titles import title_from
from chat.i18n import translated_error
from chat.models import Conversation, Message, User
from chat.permissions import may_use_persona, model_for
from chat.rendering import MessageView, append_messages_frame, branch_frame, title_frames
from chat.text import clean_text
from chat.tree import Shape, current_path, path_to
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
    #: What the reply needs to start, built in the same transaction (not for duplicates).
    context: ReplyContext | None = None


def send_message(
    *, user: User, conversation_id: int, text: str, client_id: str = ""
) -> SentMessage:
    """Store the user's message at the end of the current branch, with an empty
    streaming reply, atomically.

    ``client_id`` is the browser's id for the message: sending the same id again (after
    a dropped socket, say) returns the message already stored instead of a second one.
    """
    if client_id and not CLIENT_ID.fullmatch(client_id):
        raise ActionError(_("That message could not be read. Reload the page and try again."))
    text = checked_text(text)
    may_access(user)  # the conversation is checked as it is locked (_store)
    start = Start(text=text, client_id=client_id)
    try:
        return _with_orphans_taken_over(
            conversation_id, lambda: _store(conversation_id, start, user=user)
        )
    except IntegrityError:
        # The same message arrived twice at once (two sockets): the other one stored it.
        earlier = _already_sent(conversation_id, client_id)
        if earlier is None:
            raise
        return earlier


def regenerate_reply(*, user: User, conversation_id: int, message_id: int) -> SentMessage:
    """A new version of an assistant reply, answering the same message; the old one
    stays as a sibling. Retrying a failed or interrupted reply is the same."""
    conversation = access_conversation(user, conversation_id)
    reply = _message_of(conversation, message_id, Message.Role.ASSISTANT)
    if reply.parent_id is None:
        raise ActionError(_("The persona's greeting cannot be regenerated."))
    option = _option_of(conversation, user)
    start = Start(parent_id=reply.parent_id, replaces_branch=True)
    return _with_orphans_taken_over(
        conversation.pk, lambda: _store(conversation.pk, start, user=user, option=option)
    )


def edit_message(*, user: User, conversation_id: int, message_id: int, text: str) -> SentMessage:
    """A new version of one of the user's messages, with a fresh reply; the old
    version and everything after it stay as another branch."""
    text = checked_text(text)
    conversation = access_conversation(user, conversation_id)
    original = _message_of(conversation, message_id, Message.Role.USER)
    option = _option_of(conversation, user)
    start = Start(parent_id=original.parent_id, text=text, replaces_branch=True, at_root=True)
    return _with_orphans_taken_over(
        conversation.pk, lambda: _store(conversation.pk, start, user=user, option=option)
    )


MODEL_GONE = gettext_noop("This conversation's model is no longer available. Pick another one.")
PERSONA_GONE = gettext_noop(
    "This conversation's persona is no longer available to you. Start a new chat."
)
REPLY_RUNNING = gettext_noop("A reply is still being written. Wait for it or press Stop.")


@dataclass(frozen=True, slots=True)
class Start:
    """Where a new exchange starts: after ``parent_id`` (or the current leaf, when
    neither ``parent_id`` nor ``at_root`` says otherwise), with a new user message
    ``text`` or, when empty, a new reply to ``parent_id`` itself."""

    text: str = ""
    client_id: str = ""
    parent_id: int | None = None
    #: The browser shows another branch afterwards: send the whole path, not an append.
    replaces_branch: bool = False
    #: ``parent_id`` None means the root, not the current leaf (editing a first message).
    at_root: bool = False


def checked_text(text: str) -> str:
    text = clean_text(text).strip()
    if not text:
        raise ActionError(_("Type a message first."))
    if len(text) > MAX_MESSAGE_CHARS:
        raise ActionError(
            _("Messages are limited to {limit:,} characters.").format(limit=MAX_MESSAGE_CHARS)
        )
    return text


def _option_of(conversation: Conversation, user: User) -> registry.ModelOption:
    """The conversation's model, if it still exists and this user may still use it and
    its persona (an admin may have changed who may)."""
    option = model_for(user, conversation.model)
    if option is None:
        raise ActionError(_(MODEL_GONE))
    if not may_use_persona(user, conversation.persona):
        raise ActionError(_(PERSONA_GONE))
    return option


def _message_of(conversation: Conversation, message_id: object, role: str) -> Message:
    if not isinstance(message_id, int) or isinstance(message_id, bool):
        raise ActionError(_("That message could not be found. Reload the page."))
    message = conversation.messages.filter(pk=message_id, role=role).first()
    if message is None:
        raise ActionError(_("That message could not be found. Reload the page."))
    if message.status == Message.Status.STREAMING:
        raise ActionError(_(REPLY_RUNNING))
    return message


def _with_orphans_taken_over(conversation_id: int, store: Callable[[], SentMessage]) -> SentMessage:
    try:
        try:
            return store()
        except _ReplyRunning:
            # Perhaps an orphan whose process died: take it over now rather than at
            # the supervisor's next round, and store the message after all.
            if not take_over_stale_replies(conversation_id=conversation_id):
                raise
            return store()
    except _ReplyRunning:
        raise ActionError(_(REPLY_RUNNING)) from None


class _ReplyRunning(Exception):
    pass


def _store(
    conversation_id: int,
    start: Start,
    *,
    user: User,
    option: registry.ModelOption | None = None,
) -> SentMessage:
    """Under the conversation's lock: check, build the reply's request from the branch
    it continues, then store the rows and make the reply the current leaf. Nothing is
    stored if the request is refused.

    The lock's fetch is also the access check (the user's conversation, or 404), and
    without ``option`` the model and persona are checked here too: a send is then one
    fetch of the conversation, not two.
    """
    with transaction.atomic():
        # Lock the conversation so two tabs cannot start two replies at once.
        conversation = (
            Conversation.objects.select_for_update(of=("self",))
            .select_related("persona")
            .filter(pk=conversation_id, owner=user)
            .first()
        )
        if conversation is None:
            raise Http404("No such conversation")
        if option is None:
            try:
                option = _option_of(conversation, user)
            except ActionError:
                # Lost access (an admin's change): the next send must not start early.
                forget_next_turn(conversation.pk)
                earlier = _already_sent(conversation.pk, start.client_id)
                if earlier is not None:
                    return earlier  # a resend of what was stored before
                raise
        shape = Shape.of(conversation)
        if start.parent_id is None and not start.at_root:
            history = current_path(conversation, shape)
        else:
            history = path_to(conversation, start.parent_id, shape)
        if start.client_id:
            earlier = _sent_before(conversation, history, start.client_id)
            if earlier is not None:
                return earlier  # a resend (the socket dropped before the ack): nothing new
        if shape.streaming:
            raise _ReplyRunning
        check_send(conversation.owner_id)
        parent = history[-1] if history else None
        new: list[Message] = []
        if start.text:
            parent = Message(
                conversation=conversation,
                parent=parent,
                role=Message.Role.USER,
                content=start.text,
                client_id=start.client_id,
            )
            new.append(parent)
        base = turn_base(conversation, option, [*history, *new])
        try:
            prepared = base.request()
        except LimitExceededError as error:
            raise ActionError(translated_error(str(error))) from None
        forget_next_turn(conversation.pk)  # its reply leaves the next one
        for message in new:
            message.save(force_insert=True)
        reply = Message.objects.create(
            conversation=conversation,
            parent=parent,
            role=Message.Role.ASSISTANT,
            status=Message.Status.STREAMING,
            model=conversation.model,
        )
        conversation.current_leaf = reply
        titled = not conversation.title and bool(start.text)
        if titled:
            conversation.title = title_from(start.text)
        conversation.save(update_fields=["title", "current_leaf", "updated_at"])
        speaker = speaker_for(conversation)
        if start.replaces_branch:
            html = branch_frame(conversation, speaker=speaker)
        else:
            html = append_messages_frame(
                [MessageView.from_message(message) for message in new]
                + [MessageView.from_message(reply, speaker=speaker)]
            )
        if titled:
            html += title_frames(conversation)
        events.publish_on_commit(
            events.conversation_group(conversation.pk),
            events.frame(html, conversation_id=conversation.pk, message_id=reply.pk),
        )
    context = ReplyContext(
        reply_id=reply.pk,
        conversation_id=conversation.pk,
        model=option,
        client=registry.client_for(option),
        request=prepared.request,
        speaker=speaker,
        estimated_prompt_tokens=prepared.estimated_prompt_tokens,
        notices=prepared.notices,
        base=base,
    )
    user_message_id = new[0].pk if new else (parent.pk if parent else 0)
    return SentMessage(conversation.pk, user_message_id, reply.pk, context=context)


def _sent_before(
    conversation: Conversation, history: list[Message], client_id: str
) -> SentMessage | None:
    """The message with this client id, and its reply, from the history as loaded."""
    for index, message in enumerate(history):
        if message.role == Message.Role.USER and message.client_id == client_id:
            reply_id = next(
                (
                    later.pk
                    for later in history[index + 1 :]
                    if later.role == Message.Role.ASSISTANT
                ),
                0,
            )
            return SentMessage(conversation.pk, message.pk, reply_id, duplicate=True)
    return None


def _already_sent(conversation_id: int, client_id: str) -> SentMessage | None:
    if not client_id:
        return None
    messages = Message.objects.filter(conversation_id=conversation_id)
    earlier = (
        messages.filter(client_id=client_id, role=Message.Role.USER)
        .values_list("pk", flat=True)
        .first()
    )
    if earlier is None:
        return None
    reply_id = (
        messages.filter(parent_id=earlier, role=Message.Role.ASSISTANT)
        .values_list("pk", flat=True)
        .first()
    )
    return SentMessage(conversation_id, earlier, reply_id or 0, duplicate=True)
