"""Fit history into a model's context window without a tokenizer.

No tokenizer for these models can be downloaded here, so the estimate is deliberately
conservative (about three characters a token, one per CJK character, plus a per-message
overhead) and is scaled by a ratio calibrated from the prompt token counts upstreams
report.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from providers.clients.errors import LimitExceededError, gettext_noop
from providers.clients.types import ChatMessage, ChatRequest, ModelSpec, Persona

PER_MESSAGE_OVERHEAD = 4
SAFETY_MARGIN = 0.05
MIN_RATIO, MAX_RATIO = 0.5, 3.0

TOO_LONG = gettext_noop(
    "This message and the persona need about {needed} tokens, but {model} has {window} "
    "tokens of context and {reserved} are reserved for the answer. Shorten the message or "
    "lower the max output tokens."
)


# From the CJK radicals on: ideographs, kana, hangul, fullwidth forms, emoji.
_WIDE = re.compile("[\u2e80-\U0010ffff]+")


def estimate_tokens(text: str) -> int:
    """A token per wide character, a token per three others.

    Every send estimates its whole history, on the event loop for an early start: a
    Python loop over the characters cost 0.3 ms per 10,000 of them. This counts them
    in C.
    """
    if text.isascii():
        return math.ceil(len(text) / 3)
    narrow = len(_WIDE.sub("", text))
    return len(text) - narrow + math.ceil(narrow / 3)


def message_tokens(message: ChatMessage) -> int:
    """One message's estimate, overhead included: what ``fit_to_window`` counts for it."""
    return (
        PER_MESSAGE_OVERHEAD + estimate_tokens(message.content) + estimate_tokens(message.reasoning)
    )


def _persona_tokens(persona: Persona) -> int:
    parts = [
        persona.system_prompt,
        persona.character_name,
        persona.user_persona,
        persona.user_name,
        persona.scene,
    ]
    total = sum(estimate_tokens(part) for part in parts if part) + PER_MESSAGE_OVERHEAD * 3
    for example in persona.examples:
        total += (
            2 * PER_MESSAGE_OVERHEAD
            + estimate_tokens(example.user)
            + estimate_tokens(example.assistant)
        )
    return total


@dataclass(frozen=True, slots=True)
class Budgeted:
    request: ChatRequest
    dropped: int
    estimated_prompt_tokens: int


def fit_to_window(
    request: ChatRequest, spec: ModelSpec, *, ratio: float = 1.0, known: Sequence[int] = ()
) -> Budgeted:
    """Drop the oldest turns until the prompt fits the window minus the output budget.

    The persona, its examples and the latest user turn are always kept; if they alone do
    not fit, the request is refused with a message that says so.

    ``known``: the ``message_tokens`` of the request's first messages, when the caller
    has them (a conversation's history, estimated once per turn rather than on every
    send); the rest are estimated here.
    """
    ratio = min(max(ratio, MIN_RATIO), MAX_RATIO)
    output = request.max_output_tokens or spec.default_output_tokens
    available = int((spec.context_window - output) * (1 - SAFETY_MARGIN))
    fixed = _persona_tokens(request.persona)
    messages = list(request.messages)
    if len(known) > len(messages):
        raise ValueError("more estimates than messages")
    costs = [*known, *(message_tokens(message) for message in messages[len(known) :])]

    def total() -> int:
        return math.ceil((fixed + sum(costs)) * ratio)

    dropped = 0
    while messages and total() > available and len(messages) > 1:
        messages.pop(0)
        costs.pop(0)
        dropped += 1
        # A turn pair that starts with the assistant reads oddly (and Anthropic refuses it).
        while len(messages) > 1 and messages[0].role == "assistant":
            messages.pop(0)
            costs.pop(0)
            dropped += 1
    if total() > available:
        raise LimitExceededError.sentence(
            TOO_LONG,
            needed=f"{total():,}",
            model=spec.name,
            window=f"{spec.context_window:,}",
            reserved=f"{output:,}",
        )
    return Budgeted(replace(request, messages=tuple(messages)), dropped, total())


def calibrated_ratio(current: float, *, estimated: int, reported: int) -> float:
    """Move the ratio toward what the upstream reported (an exponential moving average)."""
    if estimated <= 0 or reported <= 0:
        return current
    observed = reported / (estimated / max(current, MIN_RATIO))
    return round(min(max(0.7 * current + 0.3 * observed, MIN_RATIO), MAX_RATIO), 4)
