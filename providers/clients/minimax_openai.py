"""MiniMax's OpenAI-compatible chat completions (``{base}/v1/chat/completions``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from providers.clients.errors import ProtocolError
from providers.clients.http import Endpoint, Timeouts, decode_json, json_payloads, open_stream
from providers.clients.openai_compat import (
    ChunkParser,
    assistant_message,
    minimax_error,
    parse_stream,
)
from providers.clients.persona import folded_messages, native_messages
from providers.clients.types import ChatRequest, StreamEvent


class MiniMaxOpenAIClient:
    """Streams from MiniMax with ``reasoning_split`` so reasoning arrives apart from text."""

    path = "/chat/completions"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        timeouts: Timeouts | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        extra_headers: Mapping[str, str] | None = None,
        native_roles: bool = True,
        finish_grace: float = 2.0,
    ) -> None:
        self.endpoint = Endpoint(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}", **(extra_headers or {})},
            secrets=(api_key,),
            timeouts=timeouts or Timeouts(),
            transport=transport,
        )
        self.native_roles = native_roles
        self.finish_grace = finish_grace

    def build_body(self, request: ChatRequest) -> dict[str, Any]:
        persona = request.persona
        messages = native_messages(persona) if self.native_roles else folded_messages(persona)
        for message in request.messages:
            if message.role == "assistant":
                messages.append(assistant_message(message, reasoning_split=True))
            else:
                user: dict[str, Any] = {"role": "user", "content": message.content}
                if self.native_roles and persona.user_name:
                    user["name"] = persona.user_name
                messages.append(user)
        body: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "reasoning_split": True,
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.max_output_tokens is not None:
            body["max_completion_tokens"] = request.max_output_tokens
        if request.stop:
            body["stop"] = list(request.stop)
        return body

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        body = self.build_body(request)
        parser = ChunkParser()
        async with open_stream(self.endpoint, self.path, body, map_error=minimax_error) as response:
            if "text/event-stream" not in response.headers.get("content-type", ""):
                # Errors (and some proxies' answers) come back as one JSON body.
                payload = decode_json(await response.aread())
                if not isinstance(payload, dict):
                    raise ProtocolError("The provider answered with something other than a stream.")
                for event in parser.feed(payload):
                    yield event
                for event in parser.close():
                    yield event
                return
            payloads = json_payloads(
                response,
                self.endpoint.timeouts,
                finished=lambda: parser.finished,
                grace=self.finish_grace,
            )
            async for event in parse_stream(payloads, parser):
                yield event
