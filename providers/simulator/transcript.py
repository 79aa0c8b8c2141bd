"""Reading back what the simulator sent, for tests and benchmarks."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator


def answer_deltas(sent: Iterable[tuple[float, str]]) -> Iterator[tuple[float, str]]:
    """``(when, text)`` for each answer delta in OpenAI-style SSE written at ``when``."""
    for at, raw in sent:
        for line in raw.splitlines():
            if not line.startswith("data: ") or line.strip() == "data: [DONE]":
                continue
            try:
                payload = json.loads(line[6:])
            except ValueError:
                continue
            for choice in payload.get("choices") or []:
                content = (choice.get("delta") or {}).get("content")
                if content:
                    yield at, content
