"""Cloudsway MaaS: ``{base}/{endpointPath}/chat/completions``, MiniMax's protocol behind it.

Its stream and error bodies are not public, so it is treated as MiniMax's OpenAI shape,
with every quirk handled, plus ``native_finish_reason`` and renamed models in answers.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from providers.clients.http import Timeouts, bearer_endpoint
from providers.clients.openai_compat import OpenAIShapedClient
from providers.clients.types import ChatRequest


class CloudswayClient(OpenAIShapedClient):
    api_label = "Cloudsway MaaS"
    native_roles = True
    max_tokens_field = "max_tokens"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        endpoint_path: str,
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
        self.endpoint_path = endpoint_path.strip("/")

    def path(self, request: ChatRequest, *, stream: bool) -> str:
        return f"/{self.endpoint_path}/chat/completions"
