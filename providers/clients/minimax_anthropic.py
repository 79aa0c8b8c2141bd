"""MiniMax's Anthropic-compatible Messages API (``{base}/anthropic/v1/messages``).

Streams dispatch on the JSON ``type`` (not the ``event:`` line). Thinking blocks arrive
with a ``signature``; the next turn must send the assistant's ``content`` list back
unchanged, signatures included, so the parser keeps the blocks exactly as received.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Iterator, Mapping
from typing import Any

import httpx

from providers.clients.base import HttpChatClient
from providers.clients.errors import (
    ProtocolError,
    ProviderError,
    ended_early,
    gettext_noop,
    skipped_malformed_chunk,
)
from providers.clients.http import Timeouts, bearer_endpoint, json_payloads
from providers.clients.openai_compat import minimax_error, minimax_payload_error
from providers.clients.persona import folded_system_prompt
from providers.clients.types import (
    ChatMessage,
    ChatRequest,
    Finish,
    FinishReason,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
)

ANTHROPIC_VERSION = "2023-06-01"
_STOP: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}


def _assistant_content(message: ChatMessage) -> list[dict[str, Any]] | str:
    kept = message.provider_data.get("content")
    if isinstance(kept, list) and kept:
        return [dict(block) for block in kept]
    # A reply that never finished has no signed thinking to send; text alone is valid.
    return message.content


def _tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    """Accept OpenAI-style function tools and send Anthropic's shape."""
    function = tool.get("function")
    if isinstance(function, dict):
        return {
            "name": function.get("name", ""),
            "description": function.get("description", ""),
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
    return dict(tool)


class MiniMaxAnthropicClient(HttpChatClient):
    api_label = "MiniMax (Anthropic-compatible)"

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
                # Regions disagree on the header (x-api-key or Bearer): send both.
                headers={"x-api-key": api_key, "anthropic-version": ANTHROPIC_VERSION},
                timeouts=timeouts,
                transport=transport,
                extra_headers=extra_headers,
            ),
            finish_grace=finish_grace,
        )

    def path(self, request: ChatRequest, *, stream: bool) -> str:
        return "/v1/messages"

    def build_body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        system = folded_system_prompt(request.persona)
        turns: list[dict[str, Any]] = []
        for example in request.persona.examples:
            turns.append({"role": "user", "content": example.user})
            turns.append({"role": "assistant", "content": example.assistant})
        history = list(request.messages)
        if history and history[0].role == "assistant" and not turns:
            # The Messages API wants the user first: a persona's greeting joins the system.
            greeting = history.pop(0).content
            system = f"{system}\n\nYou opened the conversation with: {greeting}".strip()
        for message in history:
            content: Any = (
                _assistant_content(message) if message.role == "assistant" else message.content
            )
            turns.append({"role": message.role, "content": content})
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_output_tokens or 8192,
            "messages": turns,
            "stream": stream,
        }
        if system:
            body["system"] = system
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.tools:
            body["tools"] = [_tool(tool) for tool in request.tools]
        if request.tool_choice is not None:
            body["tool_choice"] = {"type": request.tool_choice}
        return body

    def map_error(self, status: int, body: Any, headers: Mapping[str, str]) -> ProviderError:
        return minimax_error(status, body, headers)

    async def parse_stream(
        self, response: Any, request: ChatRequest
    ) -> AsyncGenerator[StreamEvent, None]:
        state = _MessageState()
        payloads = json_payloads(
            response,
            self.endpoint.timeouts,
            finished=lambda: state.stopped,
            grace=self.finish_grace,
            produced=lambda: state.produced,
        )
        try:
            async for payload in payloads:
                for event in state.feed(payload):
                    yield event
                if state.stopped:
                    break  # a stray [DONE] may follow message_stop; nothing else will
        finally:
            await payloads.aclose()
        for event in state.close():
            yield event

    def parse_whole(self, payload: Any, request: ChatRequest) -> list[StreamEvent]:
        if not isinstance(payload, dict):
            raise ProtocolError(
                gettext_noop("The provider answered with something other than JSON.")
            )
        error = minimax_payload_error(payload)
        if error is not None:
            raise error
        if payload.get("type") == "error":
            raise minimax_error(200, payload, {})
        state = _MessageState()
        events: list[StreamEvent] = []
        for index, block in enumerate(payload.get("content") or []):
            if isinstance(block, dict):
                events += state.feed(
                    {"type": "content_block_start", "index": index, "content_block": block}
                )
        state.take_usage(payload.get("usage"))
        state.stop_reason = payload.get("stop_reason")
        state.stopped = True
        return events + list(state.close())


class _MessageState:
    def __init__(self) -> None:
        self.blocks: dict[int, dict[str, Any]] = {}
        self.repeat: dict[int, str] = {}
        self.usage = Usage()
        self.stop_reason: str | None = None
        self.stopped = False
        self.produced = False

    def feed(self, payload: Any) -> Iterator[StreamEvent]:
        if not isinstance(payload, dict):
            skipped_malformed_chunk("the Anthropic-compatible API")
            return
        kind = payload.get("type")
        if kind == "error" or payload.get("error"):
            raise minimax_error(200, payload, {})
        error = minimax_payload_error(payload)
        if error is not None:
            raise error
        if kind == "message_start":
            message = payload.get("message")
            if isinstance(message, dict):
                self.take_usage(message.get("usage"))
        elif kind == "content_block_start":
            yield from self._start(payload)
        elif kind == "content_block_delta":
            yield from self._delta(payload)
        elif kind == "message_delta":
            delta = payload.get("delta")
            if isinstance(delta, dict) and delta.get("stop_reason"):
                self.stop_reason = delta["stop_reason"]
            self.take_usage(payload.get("usage"))
        elif kind == "message_stop":
            self.stopped = True
        # ping and content_block_stop need nothing.

    def _start(self, payload: Mapping[str, Any]) -> Iterator[StreamEvent]:
        index = int(payload.get("index", len(self.blocks)))
        block = payload.get("content_block")
        if not isinstance(block, dict):
            return
        kind = block.get("type")
        if kind == "thinking":
            kept = {
                "type": "thinking",
                "thinking": block.get("thinking") or "",
                "signature": block.get("signature") or "",
            }
            self.blocks[index] = kept
            if kept["thinking"]:
                self.produced = True
                yield ReasoningDelta(kept["thinking"], signature=kept["signature"] or None)
        elif kind == "text":
            text = block.get("text") or ""
            self.blocks[index] = {"type": "text", "text": text}
            if text:
                # Quirk: a text block may start with text the next text_delta repeats.
                self.repeat[index] = text
                self.produced = True
                yield TextDelta(text)
        elif kind == "tool_use":
            self.blocks[index] = {
                "type": "tool_use",
                "id": block.get("id", ""),
                "name": block.get("name", ""),
                "input": block.get("input") or {},
                "_partial": "",
            }
            yield ToolCallDelta(index=index, id=block.get("id"), name=block.get("name"))
        else:
            self.blocks[index] = dict(block)

    def _delta(self, payload: Mapping[str, Any]) -> Iterator[StreamEvent]:
        index = int(payload.get("index", 0))
        delta = payload.get("delta")
        if not isinstance(delta, dict):
            return
        block = self.blocks.setdefault(index, {"type": "text", "text": ""})
        kind = delta.get("type")
        if kind == "thinking_delta":
            text = delta.get("thinking") or ""
            block["thinking"] = block.get("thinking", "") + text
            if text:
                self.produced = True
                yield ReasoningDelta(text)
        elif kind == "signature_delta":
            block["signature"] = block.get("signature", "") + (delta.get("signature") or "")
        elif kind == "text_delta":
            text = self._unrepeat(index, delta.get("text") or "")
            block["text"] = block.get("text", "") + text
            if text:
                self.produced = True
                yield TextDelta(text)
        elif kind == "input_json_delta":
            partial = delta.get("partial_json") or ""
            block["_partial"] = block.get("_partial", "") + partial
            yield ToolCallDelta(index=index, arguments=partial)

    def _unrepeat(self, index: int, text: str) -> str:
        pending = self.repeat.pop(index, "")
        if not pending:
            return text
        if text.startswith(pending):
            return text[len(pending) :]
        if pending.startswith(text):
            self.repeat[index] = pending[len(text) :]
            return ""
        return text

    def take_usage(self, raw: Any) -> None:
        if not isinstance(raw, dict):
            return
        self.usage = Usage(
            input_tokens=int(raw.get("input_tokens") or 0) or self.usage.input_tokens,
            output_tokens=int(raw.get("output_tokens") or 0) or self.usage.output_tokens,
            reasoning_tokens=self.usage.reasoning_tokens,
            cached_tokens=int(raw.get("cache_read_input_tokens") or 0) or self.usage.cached_tokens,
        )

    def close(self) -> Iterator[StreamEvent]:
        if self.usage.input_tokens or self.usage.output_tokens:
            yield UsageReport(self.usage)
        if self.stop_reason is None:
            raise ended_early(produced=self.produced)
        yield Finish(
            _STOP.get(self.stop_reason, "unknown"),
            raw_reason=self.stop_reason,
            provider_data={"content": [self._final(self.blocks[i]) for i in sorted(self.blocks)]},
        )

    @staticmethod
    def _final(block: dict[str, Any]) -> dict[str, Any]:
        block = dict(block)
        partial = block.pop("_partial", "")
        if block.get("type") == "tool_use" and partial:
            try:
                block["input"] = json.loads(partial)
            except ValueError:
                block["input"] = {}
        return block
