"""Map a :class:`Persona` onto messages, natively or folded into the system prompt."""

from __future__ import annotations

from typing import Any

from providers.clients.types import Persona


def folded_system_prompt(persona: Persona) -> str:
    """Everything about the persona as one system prompt, for APIs without extra roles."""
    parts = []
    if persona.system_prompt:
        parts.append(persona.system_prompt)
    if persona.character_name:
        parts.append(f"You are {persona.character_name}.")
    if persona.user_persona:
        who = f" ({persona.user_name})" if persona.user_name else ""
        parts.append(f"The user{who} plays this role: {persona.user_persona}")
    elif persona.user_name:
        parts.append(f"The user's name is {persona.user_name}.")
    if persona.scene:
        parts.append(f"Scene: {persona.scene}")
    return "\n\n".join(parts)


def folded_messages(persona: Persona) -> list[dict[str, Any]]:
    """System prompt plus example turns as ordinary few-shot user/assistant pairs."""
    messages: list[dict[str, Any]] = []
    system = folded_system_prompt(persona)
    if system:
        messages.append({"role": "system", "content": system})
    for example in persona.examples:
        messages.append({"role": "user", "content": example.user})
        messages.append({"role": "assistant", "content": example.assistant})
    return messages


def native_messages(persona: Persona) -> list[dict[str, Any]]:
    """MiniMax's role-play roles: user_system, group, sample_message_user/_ai, name."""
    messages: list[dict[str, Any]] = []
    if persona.system_prompt or persona.character_name:
        messages.append(
            _named({"role": "system", "content": persona.system_prompt}, persona.character_name)
        )
    if persona.user_persona:
        messages.append(
            _named({"role": "user_system", "content": persona.user_persona}, persona.user_name)
        )
    if persona.scene:
        messages.append({"role": "group", "content": persona.scene})
    for example in persona.examples:
        messages.append(
            _named({"role": "sample_message_user", "content": example.user}, persona.user_name)
        )
        messages.append(
            _named(
                {"role": "sample_message_ai", "content": example.assistant},
                persona.character_name,
            )
        )
    return messages


def _named(message: dict[str, Any], name: str) -> dict[str, Any]:
    if name:
        message["name"] = name
    return message


def uses_extra_roles(persona: Persona) -> bool:
    """Whether :func:`native_messages` would send any role beyond system/user/assistant."""
    return bool(persona.user_persona or persona.scene or persona.examples)
