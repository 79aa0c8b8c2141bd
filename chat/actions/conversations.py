"""Conversations: start one, change its model and parameters, and build the request
it sends next."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _

from chat import events
from chat.access import access_conversation
from chat.actions.common import ActionError
from chat.actions.quotas import quotas_exist
from chat.models import Conversation, Message, PersonaPreset, User
from chat.permissions import model_for, personas_for
from chat.rendering import branch_frame, deleted_frame, title_frames
from chat.text import clean_text
from chat.tree import Shape, current_path
from providers import registry
from providers.clients.budget import fit_to_window, message_tokens
from providers.clients.http import tls_context
from providers.clients.limits import check_limits
from providers.clients.types import ChatMessage, ChatRequest, ExampleTurn, Persona


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    request: ChatRequest
    estimated_prompt_tokens: int
    notices: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TurnBase:
    """Everything a conversation's next request is built from but the new messages:
    plain values, so building the request needs no database (``chat.actions.early``)."""

    option: registry.ModelOption
    persona: Persona
    temperature: float | None
    top_p: float | None
    max_output_tokens: int | None
    messages: tuple[ChatMessage, ...]
    #: Who answers, as the page names them (a reply shown before its send is stored).
    speaker: str = ""
    #: Each of ``messages``' token estimates, made once per turn: every send fits the
    #: history to the context window (on the event loop for an early start, then on the
    #: database thread when stored), and estimating a long non-ASCII history cost about
    #: 0.6 ms per 100,000 characters. Given for the first messages (those of the turn it
    #: follows), the rest are estimated here.
    message_costs: tuple[int, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        known, messages = self.message_costs, self.messages
        if len(known) > len(messages):
            known = ()
        if len(known) < len(messages):
            costs = (*known, *map(message_tokens, messages[len(known) :]))
            object.__setattr__(self, "message_costs", costs)

    def request(self, *new: ChatMessage) -> PreparedRequest:
        """The request with ``new`` appended: checked against the model's documented
        limits and trimmed to its context window. Raises LimitExceededError."""
        option, spec = self.option, self.option.spec
        request = ChatRequest(
            model=option.upstream_model,
            messages=(*self.messages, *new),
            persona=self.persona,
            temperature=self.temperature,
            top_p=self.top_p,
            # Always explicit: some APIs' own defaults (DashScope: 256) cut answers short.
            max_output_tokens=self.max_output_tokens or spec.default_output_tokens,
        )
        check_limits(request, spec, api=option.connection.api_label)
        budgeted = fit_to_window(
            request, spec, ratio=option.prompt_token_ratio, known=self.message_costs
        )
        notices = ()
        if budgeted.dropped:
            notices = (
                f"{budgeted.dropped} older message{'s' if budgeted.dropped != 1 else ''} "
                f"left out to fit {spec.name}'s {spec.context_window:,}-token context window.",
            )
        return PreparedRequest(budgeted.request, budgeted.estimated_prompt_tokens, notices)

    def followed_by(self, *later: ChatMessage) -> TurnBase:
        return replace(self, messages=(*self.messages, *later))


def as_chat_message(message: Message) -> ChatMessage | None:
    """A stored message as the upstream sees it; None for what it never sees (failed
    replies, empty ones)."""
    if not message.content or message.status == Message.Status.FAILED:
        return None
    return ChatMessage(
        role=message.role,  # type: ignore[arg-type]
        content=message.content,
        reasoning=message.reasoning,
        provider_data=message.provider_data or {},
    )


#: This process's last known TurnBase of each conversation, from its last reply or from
#: a socket opening on it: a hint for starting the next reply early, which checks it.
_next_turns: dict[int, TurnBase] = {}
NEXT_TURNS_KEPT = 10_000


def remember_next_turn(conversation_id: int, base: TurnBase) -> None:
    _next_turns.pop(conversation_id, None)
    _next_turns[conversation_id] = base
    while len(_next_turns) > NEXT_TURNS_KEPT:
        del _next_turns[next(iter(_next_turns))]  # the oldest


def forget_next_turn(conversation_id: int) -> None:
    _next_turns.pop(conversation_id, None)


def forget_next_turns() -> None:
    _next_turns.clear()


def next_turn(conversation_id: int) -> TurnBase | None:
    return _next_turns.get(conversation_id)


def prepare_next_turn(user: User, conversation: Conversation) -> None:
    """For a socket opening on a conversation this process knows nothing about yet:
    remember what its next request is built from, so a send can start it early."""
    if not settings.REPLY_EARLY_START or next_turn(conversation.pk) is not None:
        return
    option = model_for(user, conversation.model)
    shape = Shape.of(conversation)
    if option is None or shape.streaming:
        return  # a running reply leaves the next turn when it ends
    remember_next_turn(
        conversation.pk, turn_base(conversation, option, current_path(conversation, shape))
    )
    quotas_exist()  # and whether a send may start early
    # What a first request would otherwise do on the event loop, done here: load the CA
    # bundle, and start the offline demo's simulator.
    tls_context()
    if option.simulated:
        registry.demo_upstream_url()


def turn_base(
    conversation: Conversation, option: registry.ModelOption, history: list[Message]
) -> TurnBase:
    messages = tuple(m for m in map(as_chat_message, history) if m is not None)
    # The turn this process remembers, when the history starts with its messages (the
    # usual case: nobody changed the conversation meanwhile), has their estimates.
    remembered = next_turn(conversation.pk)
    known: tuple[int, ...] = ()
    if remembered is not None and messages[: len(remembered.messages)] == remembered.messages:
        known = remembered.message_costs
    return TurnBase(
        option=option,
        persona=_persona_for(conversation.persona),
        temperature=conversation.temperature,
        top_p=conversation.top_p,
        max_output_tokens=conversation.max_output_tokens,
        messages=messages,
        speaker=speaker_for(conversation),
        message_costs=known,
    )


def prepare_request(
    conversation: Conversation, option: registry.ModelOption, history: list[Message]
) -> PreparedRequest:
    """The request a conversation sends next, after ``history``. Raises
    LimitExceededError."""
    return turn_base(conversation, option, history).request()


def create_conversation(*, user: User, persona_id: int | None, model_key: str) -> Conversation:
    option = model_for(user, model_key)
    if option is None:
        raise ActionError(_("Pick a model from the list."))
    persona = None
    if persona_id is not None:
        persona = personas_for(user).prefetch_related("examples").filter(pk=persona_id).first()
        if persona is None:
            raise ActionError(_("That persona no longer exists."))
    with transaction.atomic():
        conversation = Conversation.objects.create(
            owner=user,
            persona=persona,
            model=option.key,
            temperature=persona.temperature if persona else None,
            top_p=persona.top_p if persona else None,
            max_output_tokens=persona.max_output_tokens if persona else None,
        )
        if persona and persona.greeting:
            conversation.current_leaf = Message.objects.create(
                conversation=conversation,
                role=Message.Role.ASSISTANT,
                content=persona.greeting,
                status=Message.Status.COMPLETE,
                model=option.key,
            )
            conversation.save(update_fields=["current_leaf"])
    return conversation


def update_conversation_settings(
    *,
    user: User,
    conversation_id: int,
    model_key: str,
    temperature: float | None,
    top_p: float | None,
    max_output_tokens: int | None,
) -> Conversation:
    """Change a conversation's model and parameters (already checked against its limits)."""
    conversation = access_conversation(user, conversation_id)
    if model_for(user, model_key) is None:
        raise ActionError(_("Pick a model from the list."))
    conversation.model = model_key
    conversation.temperature = temperature
    conversation.top_p = top_p
    conversation.max_output_tokens = max_output_tokens
    conversation.save(
        update_fields=["model", "temperature", "top_p", "max_output_tokens", "updated_at"]
    )
    forget_next_turn(conversation.pk)
    return conversation


def speaker_for(conversation: Conversation) -> str:
    persona = conversation.persona
    if persona is None:
        return "Assistant"
    return persona.character_name or persona.name


def _persona_for(preset: PersonaPreset | None) -> Persona:
    if preset is None:
        return Persona()
    return Persona(
        system_prompt=preset.system_prompt,
        character_name=preset.character_name,
        user_persona=preset.user_persona,
        user_name=preset.user_name,
        scene=preset.scene,
        examples=tuple(
            ExampleTurn(user=example.user_text, assistant=example.assistant_text)
            for example in preset.examples.all()
        ),
    )


def switch_branch(
    *, user: User, conversation_id: int, message_id: object, only_if_hidden: bool = False
) -> int:
    """Show the version ``message_id`` of a message, down to that branch's newest leaf;
    the next message continues it. Every tab follows. Returns the new leaf's id.

    ``only_if_hidden``: leave the branch as it is if it already shows the message.
    """
    conversation = access_conversation(user, conversation_id)
    if not isinstance(message_id, int) or isinstance(message_id, bool):
        raise ActionError(_("That version could not be found. Reload the page."))
    with transaction.atomic():
        conversation = (
            Conversation.objects.select_for_update(of=("self",))
            .select_related("persona")
            .get(pk=conversation.pk)
        )
        shape = Shape.of(conversation)
        if message_id not in shape:
            raise ActionError(_("That version could not be found. Reload the page."))
        if only_if_hidden and message_id in shape.path_ids(conversation.current_leaf_id):
            return conversation.current_leaf_id  # type: ignore[return-value]
        if shape.streaming:
            raise ActionError(_("Wait for the reply to finish, or press Stop, to switch versions."))
        leaf = shape.latest_leaf(message_id)
        conversation.current_leaf_id = leaf
        conversation.save(update_fields=["current_leaf"])
        forget_next_turn(conversation.pk)
        html = branch_frame(conversation, speaker=speaker_for(conversation))
        events.publish_on_commit(
            events.conversation_group(conversation.pk),
            events.frame(html, conversation_id=conversation.pk),
        )
    return leaf  # type: ignore[return-value]


def rename_conversation(*, user: User, conversation_id: int, title: str) -> Conversation:
    """A title of the user's own; every open tab and sidebar shows it."""
    conversation = access_conversation(user, conversation_id)
    title = " ".join(clean_text(title).split())
    if not title:
        raise ActionError(_("A title cannot be empty."))
    if len(title) > TITLE_MAX_CHARS:
        raise ActionError(
            _("Titles are limited to {limit} characters.").format(limit=TITLE_MAX_CHARS)
        )
    with transaction.atomic():
        conversation.title = title
        conversation.auto_title = False
        conversation.save(update_fields=["title", "auto_title"])
        events.publish_on_commit(
            events.conversation_group(conversation.pk),
            events.frame(title_frames(conversation), conversation_id=conversation.pk),
        )
    return conversation


def set_pinned(*, user: User, conversation_id: int, pinned: bool) -> Conversation:
    conversation = access_conversation(user, conversation_id)
    conversation.pinned = pinned
    conversation.save(update_fields=["pinned"])
    return conversation


def delete_conversation(*, user: User, conversation_id: int) -> None:
    """Delete a conversation with every message and version. A reply still running is
    told to stop, wherever its process is (it finds no row to save and is dropped).
    Open tabs are told, and their sockets closed."""
    conversation = access_conversation(user, conversation_id)
    group = events.conversation_group(conversation.pk)
    with transaction.atomic():
        running = list(
            conversation.messages.filter(status=Message.Status.STREAMING).values_list(
                "pk", flat=True
            )
        )
        Conversation.objects.filter(pk=conversation.pk).update(current_leaf=None)
        conversation.delete()
        forget_next_turn(conversation_id)
        for reply_id in running:
            events.publish_on_commit(events.reply_group(reply_id), {"type": "reply.stop"})
        events.publish_on_commit(
            group, events.frame(deleted_frame(), conversation_id=conversation_id)
        )
        events.revoke(group)


TITLE_MAX_CHARS = 120
