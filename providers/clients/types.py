"""The one interface every upstream client speaks. Pure Python: no Django here."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One turn of history.

    ``provider_data`` holds what an API asked us to send back unchanged on the next
    turn (MiniMax ``reasoning_details``, Anthropic content blocks with signatures).
    """

    role: Role
    content: str
    reasoning: str = ""
    provider_data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ExampleTurn:
    user: str
    assistant: str


@dataclass(frozen=True, slots=True)
class Persona:
    """Who the model plays and the scene around it; each client maps it for its API."""

    system_prompt: str = ""
    character_name: str = ""
    user_persona: str = ""
    user_name: str = ""
    scene: str = ""
    examples: tuple[ExampleTurn, ...] = ()


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: tuple[ChatMessage, ...]
    persona: Persona = field(default_factory=Persona)
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str
    signature: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class UsageReport:
    usage: Usage


FinishReason = Literal["stop", "length", "content_filter", "tool_calls", "error", "unknown"]


@dataclass(frozen=True, slots=True)
class Finish:
    reason: FinishReason
    raw_reason: str | None = None
    provider_data: Mapping[str, Any] = field(default_factory=dict)


StreamEvent = TextDelta | ReasoningDelta | ToolCallDelta | UsageReport | Finish


class ChatClient(Protocol):
    """What the chat app needs from an upstream: a stream of events for a request.

    Implementations raise :class:`providers.clients.errors.ProviderError` subclasses.
    Closing the iterator (``aclose``) closes the upstream connection.
    """

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]: ...
