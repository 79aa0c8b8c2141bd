"""The one interface every upstream client speaks. Pure Python: no Django here."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
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
    n: int = 1
    tools: tuple[Mapping[str, Any], ...] = ()
    tool_choice: str | None = None


@dataclass(frozen=True, slots=True)
class Range:
    """A parameter's documented range, e.g. temperature ``0 < t <= 1``."""

    minimum: float
    maximum: float
    min_exclusive: bool = False
    default: float | None = None

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int | float):
            return False
        above = value > self.minimum if self.min_exclusive else value >= self.minimum
        return above and value <= self.maximum

    def describe(self) -> str:
        low = "<" if self.min_exclusive else "≤"
        return f"{_num(self.minimum)} {low} value ≤ {_num(self.maximum)}"


def _num(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What one API documents about one model: window, output cap, parameter ranges."""

    name: str
    context_window: int
    max_output_tokens: int
    #: Sent when the user sets nothing: some APIs' own default (DashScope: 256) cuts answers.
    default_output_tokens: int
    temperature: Range = Range(0.0, 1.0, min_exclusive=True, default=1.0)
    top_p: Range = Range(0.0, 1.0, min_exclusive=True, default=0.95)
    #: 0 where the API ignores or lacks stop sequences.
    max_stop: int = 4
    tool_choices: tuple[str, ...] = ("none", "auto")
    reasoning: bool = True
    tools: bool = True
    images: bool = False
    extra_roles: bool = False


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


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the user should know about how this reply was produced."""

    text: str


FinishReason = Literal["stop", "length", "content_filter", "tool_calls", "error", "unknown"]


@dataclass(frozen=True, slots=True)
class Finish:
    reason: FinishReason
    raw_reason: str | None = None
    provider_data: Mapping[str, Any] = field(default_factory=dict)


StreamEvent = TextDelta | ReasoningDelta | ToolCallDelta | UsageReport | Notice | Finish


@dataclass(frozen=True, slots=True)
class Completion:
    """A whole answer, from a non-streaming call (or a stream gathered up)."""

    text: str
    reasoning: str
    finish: Finish
    usage: Usage | None = None
    tool_calls: tuple[ToolCallDelta, ...] = ()
    notices: tuple[str, ...] = ()


class ChatClient(Protocol):
    """What the chat app needs from an upstream.

    Implementations raise :class:`providers.clients.errors.ProviderError` subclasses.
    Closing the stream (``aclose``) closes the upstream connection.
    """

    def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]: ...

    async def complete(self, request: ChatRequest) -> Completion: ...
