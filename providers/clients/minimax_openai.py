"""MiniMax's OpenAI-compatible chat completions (``{base}/v1/chat/completions``)."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from providers.clients.http import Timeouts, bearer_endpoint
from providers.clients.openai_compat import OpenAIShapedClient
from providers.clients.types import ChatRequest


class MiniMaxOpenAIClient(OpenAIShapedClient):
    """Streams with ``reasoning_split`` so reasoning arrives apart from the answer, and
    uses MiniMax's role-play roles for personas."""

    api_label = "MiniMax (OpenAI-compatible)"
    native_roles = True

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        timeouts: Timeouts | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        extra_headers: Mapping[str, str] | None = None,
        finish_grace: float = 2.0,
    ) -> None:
        super().__init__(
            bearer_endpoint(
                base_url,
                api_key,
                timeouts=timeouts,
                transport=transport,
                extra_headers=extra_headers,
            ),
            finish_grace=finish_grace,
        )

    def path(self, request: ChatRequest, *, stream: bool) -> str:
        return "/chat/completions"
