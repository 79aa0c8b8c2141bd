"""Conversations: start one, change its model and parameters, and build the request
it sends next."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from chat.access import access_conversation
from chat.actions.common import ActionError
from chat.models import Conversation, Message, PersonaPreset, User
from providers import registry
from providers.clients.budget import fit_to_window
from providers.clients.limits import check_limits
from providers.clients.types import ChatMessage, ChatRequest, ExampleTurn, Persona


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    request: ChatRequest
    estimated_prompt_tokens: int
    notices: tuple[str, ...]


def prepare_request(
    conversation: Conversation, option: registry.ModelOption, history: list[Message]
) -> PreparedRequest:
    """The request a conversation sends next: checked against the model's documented
    limits and trimmed to its context window. Raises LimitExceededError."""
    spec = option.spec
    request = ChatRequest(
        model=option.upstream_model,
        messages=tuple(
            ChatMessage(
                role=message.role,  # type: ignore[arg-type]
                content=message.content,
                reasoning=message.reasoning,
                provider_data=message.provider_data or {},
            )
            for message in history
            if message.content and message.status != Message.Status.FAILED
        ),
        persona=_persona_for(conversation.persona),
        temperature=conversation.temperature,
        top_p=conversation.top_p,
        # Always explicit: some APIs' own defaults (DashScope: 256) cut answers short.
        max_output_tokens=conversation.max_output_tokens or spec.default_output_tokens,
    )
    check_limits(request, spec, api=option.connection.api_label)
    budgeted = fit_to_window(request, spec, ratio=option.prompt_token_ratio)
    notices = ()
    if budgeted.dropped:
        notices = (
            f"{budgeted.dropped} older message{'s' if budgeted.dropped != 1 else ''} "
            f"left out to fit {spec.name}'s {spec.context_window:,}-token context window.",
        )
    return PreparedRequest(budgeted.request, budgeted.estimated_prompt_tokens, notices)


def create_conversation(*, user: User, persona_id: int | None, model_key: str) -> Conversation:
    option = registry.get_model(model_key)
    if option is None:
        raise ActionError("Pick a model from the list.")
    persona = None
    if persona_id is not None:
        persona = PersonaPreset.objects.prefetch_related("examples").filter(pk=persona_id).first()
        if persona is None:
            raise ActionError("That persona no longer exists.")
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
            Message.objects.create(
                conversation=conversation,
                role=Message.Role.ASSISTANT,
                content=persona.greeting,
                status=Message.Status.COMPLETE,
                model=option.key,
            )
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
    if registry.get_model(model_key) is None:
        raise ActionError("Pick a model from the list.")
    conversation.model = model_key
    conversation.temperature = temperature
    conversation.top_p = top_p
    conversation.max_output_tokens = max_output_tokens
    conversation.save(
        update_fields=["model", "temperature", "top_p", "max_output_tokens", "updated_at"]
    )
    return conversation


def title_from(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 60 else line[:59].rstrip() + "…"


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
