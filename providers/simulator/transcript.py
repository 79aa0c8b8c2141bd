"""Reading back what the simulator sent, for tests and benchmarks."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any


def _deltas(sent: Iterable[tuple[float, str]]) -> Iterator[tuple[float, dict[str, Any]]]:
    """``(when, delta)`` for each choice's delta in OpenAI-style SSE written at ``when``."""
    for at, raw in sent:
        for line in raw.splitlines():
            if not line.startswith("data: ") or line.strip() == "data: [DONE]":
                continue
            try:
                payload = json.loads(line[6:])
            except ValueError:
                continue
            for choice in payload.get("choices") or []:
                yield at, choice.get("delta") or {}


def answer_deltas(sent: Iterable[tuple[float, str]]) -> Iterator[tuple[float, str]]:
    """``(when, text)`` for each answer delta in OpenAI-style SSE written at ``when``."""
    for at, delta in _deltas(sent):
        if delta.get("content"):
            yield at, delta["content"]


_TEXT_KEYS = ("content", "reasoning_content", "reasoning_details")


def first_token_at(sent: Iterable[tuple[float, str]]) -> float | None:
    """When the first piece of text or reasoning went out in OpenAI-style SSE: the
    first chunk after the role chunk that carries any."""
    for at, delta in _deltas(sent):
        if any(delta.get(key) for key in _TEXT_KEYS):
            return at
    return None
