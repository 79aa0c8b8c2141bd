"""The OpenAI chat-completions stream as MiniMax-backed APIs really send it.

Shared by the MiniMax OpenAI-compatible API, Cloudsway and Workers AI. Every quirk in
PROTOCOLS.md part A is handled here, once.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Iterator, Mapping
from contextlib import aclosing
from typing import Any

from providers.clients.errors import (
    AuthenticationError,
    ContentFilteredError,
    InsufficientQuotaError,
    InvalidRequestError,
    ModelNotFoundError,
    OverloadedError,
    ProtocolError,
    ProviderError,
    RateLimitedError,
    UpstreamConnectionError,
    UpstreamTimeoutError,
)
from providers.clients.http import parse_retry_after
from providers.clients.thinking import SnapshotOrDelta, ThinkTagSplitter
from providers.clients.types import (
    ChatMessage,
    Finish,
    FinishReason,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
)

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
}

# MiniMax status codes (base_resp.status_code, or "(CODE)" at the end of a message).
_MINIMAX_CODES: dict[int, type[ProviderError]] = {
    1000: OverloadedError,
    1001: UpstreamTimeoutError,
    1002: RateLimitedError,
    1004: AuthenticationError,
    1008: InsufficientQuotaError,
    1013: OverloadedError,
    1024: OverloadedError,
    1026: ContentFilteredError,
    1027: ContentFilteredError,
    1033: OverloadedError,
    1039: InvalidRequestError,
    1041: RateLimitedError,
    1042: InvalidRequestError,
    2013: InvalidRequestError,
    2045: RateLimitedError,
    2049: AuthenticationError,
    2056: InsufficientQuotaError,
}
_MINIMAX_CODE_MESSAGES = {
    1026: "The provider's content filter flagged the input.",
    1027: "The provider's content filter flagged the output.",
    1039: "The conversation is longer than the model's context window.",
    1042: "The message contains too many invisible characters.",
    2056: "The provider account reached its usage limit for this 5-hour window.",
}
_ERROR_TYPES: dict[str, type[ProviderError]] = {
    "authorized_error": AuthenticationError,
    "authentication_error": AuthenticationError,
    "permission_error": AuthenticationError,
    "bad_request_error": InvalidRequestError,
    "invalid_request_error": InvalidRequestError,
    "unprocessable_entity_error": InvalidRequestError,
    "not_found_error": ModelNotFoundError,
    "rate_limit_error": RateLimitedError,
    "insufficient_balance_error": InsufficientQuotaError,
    "overloaded_error": OverloadedError,
    "server_error": OverloadedError,
    "api_error": OverloadedError,
}
_STATUSES: dict[int, type[ProviderError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    402: InsufficientQuotaError,
    403: AuthenticationError,
    404: ModelNotFoundError,
    408: UpstreamTimeoutError,
    409: InvalidRequestError,
    413: InvalidRequestError,
    422: InvalidRequestError,
    429: RateLimitedError,
    504: UpstreamTimeoutError,
}
_TRAILING_CODE = re.compile(r"\((\d{3,5})\)\s*$")


def minimax_error(status: int, body: Any, headers: Mapping[str, str]) -> ProviderError:
    """Map either MiniMax error shape (or a bare status) to a typed error."""
    retry_after = parse_retry_after(headers)
    message: str | None = None
    code: int | None = None
    error_type: str | None = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            message = _text(error.get("message"))
            error_type = _text(error.get("type"))
        elif isinstance(error, str):
            message = error
        base_resp = body.get("base_resp")
        if isinstance(base_resp, dict) and base_resp.get("status_code"):
            code = _int(base_resp.get("status_code"))
            message = message or _text(base_resp.get("status_msg"))
    if code is None and message:
        found = _TRAILING_CODE.search(message)
        if found:
            code = int(found.group(1))
    cls: type[ProviderError] | None = None
    if code is not None:
        cls = _MINIMAX_CODES.get(code)
    if cls is None and error_type:
        cls = _ERROR_TYPES.get(error_type)
    if cls is None:
        cls = _STATUSES.get(status, OverloadedError if status >= 500 else ProviderError)
    friendly = _MINIMAX_CODE_MESSAGES.get(code or 0)
    text = friendly or _sentence(cls, message)
    return cls(text, status=status, code=str(code) if code else error_type, retry_after=retry_after)


def base_resp_error(payload: Mapping[str, Any]) -> ProviderError | None:
    """MiniMax's legacy shape: HTTP 200 with a non-zero ``base_resp.status_code``."""
    base_resp = payload.get("base_resp")
    if isinstance(base_resp, dict) and _int(base_resp.get("status_code")):
        return minimax_error(200, payload, {})
    return None


def _sentence(cls: type[ProviderError], message: str | None) -> str:
    if not message:
        return cls.default_message
    return f"{cls.default_message} The provider said: {message.strip()}"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def assistant_message(message: ChatMessage, *, reasoning_split: bool) -> dict[str, Any]:
    """The previous assistant turn, sent back the way MiniMax asks: unchanged."""
    out: dict[str, Any] = {"role": "assistant", "content": message.content}
    details = message.provider_data.get("reasoning_details")
    if reasoning_split and details:
        out["reasoning_details"] = details
    elif message.reasoning:
        if reasoning_split:
            out["reasoning_details"] = [
                {"type": "reasoning.text", "text": message.reasoning, "index": 0}
            ]
        else:
            out["content"] = f"<think>\n{message.reasoning}\n</think>\n\n{message.content}"
    return out


class ChunkParser:
    """Turns decoded ``chat.completion.chunk`` payloads into stream events."""

    def __init__(self) -> None:
        self._think = ThinkTagSplitter()
        self._details: dict[int, SnapshotOrDelta] = {}
        self._details_meta: dict[int, dict[str, Any]] = {}
        self._reasoning_source: str | None = None
        self._usage: Usage | None = None
        self._finish_raw: str | None = None
        self.streamed_text = False
        self.malformed_chunks = 0

    @property
    def finished(self) -> bool:
        return self._finish_raw is not None

    def feed(self, payload: Any) -> Iterator[StreamEvent]:
        if not isinstance(payload, dict):
            self.malformed_chunks += 1
            return
        error = base_resp_error(payload)
        if error is not None:
            raise error
        if "error" in payload and payload.get("error"):
            raise minimax_error(200, payload, {})
        usage = _usage(payload.get("usage"))
        if usage is not None:
            # Usage is cumulative (Workers AI's last native frame included): replace.
            self._usage = usage
        if payload.get("object") == "chat.completion":
            yield from self._whole_completion(payload)
            return
        if "response" in payload and "choices" not in payload:
            text = payload.get("response")
            if isinstance(text, str) and text and not self.finished:
                yield from self._content(text)
            return
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices:
            return
        choice = choices[0]
        if not isinstance(choice, dict):
            self.malformed_chunks += 1
            return
        delta = choice.get("delta") or choice.get("message") or {}
        if not isinstance(delta, dict):
            self.malformed_chunks += 1
            return
        finish = choice.get("finish_reason")
        if self.finished:
            return  # a second finish chunk: its text repeats or is stray
        yield from self._reasoning(delta)
        content = delta.get("content")
        if isinstance(content, str) and content:
            if finish and not content.replace("<think>", "").replace("</think>", "").strip():
                pass  # stray "\n<think>\n" riding on a finish chunk
            else:
                yield from self._content(content)
        yield from self._tool_calls(delta.get("tool_calls"))
        if isinstance(finish, str) and finish and finish != "null":
            self._finish_raw = finish

    def close(self) -> Iterator[StreamEvent]:
        """End of stream (``[DONE]``, EOF or quiet after the finish chunk)."""
        for kind, text in self._think.flush():
            yield ReasoningDelta(text) if kind == "reasoning" else TextDelta(text)
        if self._usage is not None:
            yield UsageReport(self._usage)
        if self._finish_raw is None:
            if self.streamed_text:
                raise UpstreamConnectionError(
                    "The provider's stream ended before the reply finished."
                )
            raise ProtocolError("The provider's stream ended without a reply.")
        provider_data: dict[str, Any] = {}
        if self._details:
            provider_data["reasoning_details"] = [
                {**self._details_meta[index], "text": tracker.text}
                for index, tracker in sorted(self._details.items())
            ]
        yield Finish(
            _FINISH_REASONS.get(self._finish_raw, "unknown"),
            raw_reason=self._finish_raw,
            provider_data=provider_data,
        )

    def _content(self, text: str) -> Iterator[StreamEvent]:
        for kind, piece in self._think.feed(text):
            if kind == "reasoning":
                yield ReasoningDelta(piece)
            else:
                self.streamed_text = True
                yield TextDelta(piece)

    def _reasoning(self, delta: Mapping[str, Any]) -> Iterator[StreamEvent]:
        details = delta.get("reasoning_details")
        if isinstance(details, list) and details:
            self._reasoning_source = "details"
            for position, item in enumerate(details):
                if not isinstance(item, dict):
                    continue
                index = _int(item.get("index"))
                index = position if index is None else index
                tracker = self._details.setdefault(index, SnapshotOrDelta())
                meta = {k: v for k, v in item.items() if k != "text" and v is not None}
                self._details_meta.setdefault(index, {}).update(meta)
                text = tracker.feed(item.get("text") or "")
                if text:
                    self.streamed_text = True
                    yield ReasoningDelta(text, signature=_text(item.get("signature")))
            return
        reasoning = delta.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning and self._reasoning_source != "details":
            self._reasoning_source = "content"
            self.streamed_text = True
            yield ReasoningDelta(reasoning)

    def _tool_calls(self, calls: Any) -> Iterator[StreamEvent]:
        if not isinstance(calls, list):
            return
        for position, call in enumerate(calls):
            if not isinstance(call, dict):
                continue
            raw_function = call.get("function")
            function: dict[str, Any] = raw_function if isinstance(raw_function, dict) else {}
            index = _int(call.get("index"))
            yield ToolCallDelta(
                index=position if index is None else index,
                id=_text(call.get("id")),
                name=_text(function.get("name")),
                arguments=function.get("arguments") or "",
            )

    def _whole_completion(self, payload: Mapping[str, Any]) -> Iterator[StreamEvent]:
        """A whole ``chat.completion`` object, as a last frame or a non-streamed answer."""
        choices = payload.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else {}
        if not isinstance(choice, dict):
            return
        if not self.streamed_text:
            message = choice.get("message") or {}
            if isinstance(message, dict):
                yield from self._reasoning(message)
                content = message.get("content")
                if isinstance(content, str) and content:
                    yield from self._content(content)
                yield from self._tool_calls(message.get("tool_calls"))
        finish = choice.get("finish_reason")
        if not self.finished and isinstance(finish, str) and finish:
            self._finish_raw = finish


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt = _int(raw.get("prompt_tokens")) or _int(raw.get("input_tokens")) or 0
    completion = _int(raw.get("completion_tokens")) or _int(raw.get("output_tokens")) or 0
    if not prompt and not completion:
        return None  # zero usage sent early in the stream
    details = raw.get("completion_tokens_details")
    prompt_details = raw.get("prompt_tokens_details")
    return Usage(
        input_tokens=prompt,
        output_tokens=completion,
        reasoning_tokens=(_int(details.get("reasoning_tokens")) or 0)
        if isinstance(details, dict)
        else 0,
        cached_tokens=(_int(prompt_details.get("cached_tokens")) or 0)
        if isinstance(prompt_details, dict)
        else 0,
    )


async def parse_stream(
    payloads: AsyncGenerator[Any, None], parser: ChunkParser
) -> AsyncGenerator[StreamEvent, None]:
    """Drive ``parser`` over decoded payloads; ``None`` payloads are malformed frames."""
    async with aclosing(payloads):
        async for payload in payloads:
            for event in parser.feed(payload):
                yield event
    for event in parser.close():
        yield event
