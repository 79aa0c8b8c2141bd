"""The OpenAI chat-completions stream as MiniMax-backed APIs really send it.

Shared by the MiniMax OpenAI-compatible API, Cloudsway and Workers AI. Every quirk in
PROTOCOLS.md part A is handled here, once.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from contextlib import aclosing
from typing import Any

from providers.clients.base import HttpChatClient
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
    UpstreamTimeoutError,
    ended_early,
    gettext_noop,
    skipped_malformed_chunk,
    upstream_said,
)
from providers.clients.http import json_payloads, parse_retry_after
from providers.clients.persona import folded_messages, native_messages, uses_extra_roles
from providers.clients.thinking import SnapshotOrDelta, ThinkTagSplitter
from providers.clients.types import (
    ChatMessage,
    ChatRequest,
    Finish,
    FinishReason,
    Notice,
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
    # A specific MiniMax code wins; then a specific HTTP status; then the error type.
    # Code 1000 means "unknown" and must not hide a clear status such as 403 or 504.
    cls: type[ProviderError] | None = None
    if code is not None and code != 1000:
        cls = _MINIMAX_CODES.get(code)
    if cls is None:
        cls = _STATUSES.get(status)
    if cls is None and error_type:
        cls = _ERROR_TYPES.get(error_type)
    if cls is None:
        cls = OverloadedError if status >= 500 or code == 1000 else ProviderError
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
    return f"{cls.default_message} The provider said: {upstream_said(message)}"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def assistant_message(message: ChatMessage) -> dict[str, Any]:
    """The previous assistant turn, sent back the way MiniMax asks: unchanged.

    The parser kept the exact message the API produced; a reply that never finished
    (stopped, interrupted) is rebuilt from its text and reasoning.
    """
    kept = message.provider_data.get("assistant_message")
    if isinstance(kept, dict):
        return dict(kept)
    out: dict[str, Any] = {"role": "assistant", "content": message.content}
    if message.reasoning:
        out["reasoning_details"] = [
            {"type": "reasoning.text", "text": message.reasoning, "index": 0}
        ]
    return out


ErrorHook = Callable[[Mapping[str, Any]], ProviderError | None]


def minimax_payload_error(payload: Mapping[str, Any]) -> ProviderError | None:
    error = base_resp_error(payload)
    if error is None and payload.get("error"):
        error = minimax_error(200, payload, {})
    return error


class ChunkParser:
    """Turns decoded ``chat.completion.chunk`` payloads into stream events.

    It also keeps the assistant message exactly as the API produced it, for the next
    turn: ``reasoning_details``, inline ``<think>`` content or ``reasoning_content``.
    """

    def __init__(self, *, payload_error: ErrorHook = minimax_payload_error) -> None:
        self._payload_error = payload_error
        self._think = ThinkTagSplitter()
        self._details: dict[int, SnapshotOrDelta] = {}
        self._details_meta: dict[int, dict[str, Any]] = {}
        self._reasoning_source: str | None = None
        self._reasoning_content: list[str] = []
        self._raw_content: list[str] = []
        self._text: list[str] = []
        self._tool_calls: dict[int, dict[str, Any]] = {}
        self._usage: Usage | None = None
        self._finish_raw: str | None = None
        self.streamed_text = False

    @property
    def finished(self) -> bool:
        return self._finish_raw is not None

    def feed(self, payload: Any) -> Iterator[StreamEvent]:
        if not isinstance(payload, dict):
            skipped_malformed_chunk("an OpenAI-shaped API")
            return
        error = self._payload_error(payload)
        if error is not None:
            raise error
        self._take_usage(payload.get("usage"))
        if payload.get("object") == "chat.completion":
            yield from self._whole_completion(payload)
            return
        if "response" in payload and "choices" not in payload:
            # Workers AI's native frame: older models stream text in it; for this
            # model it carries only the cumulative usage at the end.
            text = payload.get("response")
            if isinstance(text, str) and text and not self.finished:
                yield from self._content(text)
            return
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices:
            return
        choice = choices[0]
        if not isinstance(choice, dict):
            skipped_malformed_chunk("an OpenAI-shaped API")
            return
        delta = choice.get("delta") or choice.get("message") or {}
        if not isinstance(delta, dict):
            skipped_malformed_chunk("an OpenAI-shaped API")
            return
        finish = choice.get("native_finish_reason") or choice.get("finish_reason")
        if self.finished:
            return  # a second finish chunk: its text repeats or is stray
        yield from self._reasoning(delta)
        content = delta.get("content")
        if isinstance(content, str) and content:
            if finish and not content.replace("<think>", "").replace("</think>", "").strip():
                pass  # stray "\n<think>\n" riding on a finish chunk
            else:
                yield from self._content(content)
        yield from self._take_tool_calls(delta.get("tool_calls"))
        if isinstance(finish, str) and finish and finish != "null":
            self._finish_raw = finish

    def close(self) -> Iterator[StreamEvent]:
        """End of stream (``[DONE]``, EOF or quiet after the finish chunk)."""
        for kind, text in self._think.flush():
            if kind == "reasoning":
                yield ReasoningDelta(text)
            else:
                self._text.append(text)
                yield TextDelta(text)
        if self._usage is not None:
            yield UsageReport(self._usage)
        if self._finish_raw is None:
            raise ended_early(produced=self.streamed_text)
        yield Finish(
            _FINISH_REASONS.get(self._finish_raw, "unknown"),
            raw_reason=self._finish_raw,
            provider_data={"assistant_message": self._assistant_message()},
        )

    def _assistant_message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant"}
        if self._reasoning_source == "inline":
            message["content"] = "".join(self._raw_content)
        else:
            message["content"] = "".join(self._text)
        if self._reasoning_source == "details":
            message["reasoning_details"] = [
                {**self._details_meta[index], "text": tracker.text}
                for index, tracker in sorted(self._details.items())
            ]
        elif self._reasoning_source == "content":
            message["reasoning_content"] = "".join(self._reasoning_content)
        if self._tool_calls:
            message["tool_calls"] = [self._tool_calls[i] for i in sorted(self._tool_calls)]
        return message

    def _content(self, text: str) -> Iterator[StreamEvent]:
        self._raw_content.append(text)
        for kind, piece in self._think.feed(text):
            self.streamed_text = True
            if kind == "reasoning":
                self._reasoning_source = self._reasoning_source or "inline"
                yield ReasoningDelta(piece)
            else:
                self.streamed_text = True
                self._text.append(piece)
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
            self._reasoning_content.append(reasoning)
            self.streamed_text = True
            yield ReasoningDelta(reasoning)

    def _take_tool_calls(self, calls: Any) -> Iterator[StreamEvent]:
        if not isinstance(calls, list):
            return
        for position, call in enumerate(calls):
            if not isinstance(call, dict):
                continue
            raw_function = call.get("function")
            function: dict[str, Any] = raw_function if isinstance(raw_function, dict) else {}
            index = _int(call.get("index"))
            event = ToolCallDelta(
                index=position if index is None else index,
                id=_text(call.get("id")),
                name=_text(function.get("name")),
                arguments=function.get("arguments") or "",
            )
            kept = self._tool_calls.setdefault(
                event.index,
                {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
            )
            kept["id"] = event.id or kept["id"]
            kept["function"]["name"] = event.name or kept["function"]["name"]
            kept["function"]["arguments"] += event.arguments
            yield event

    def _take_usage(self, raw: Any) -> None:
        usage = _usage(raw)
        if usage is None:
            return
        # Usage arrives as zeros early, as increments (Workers AI) or cumulatively; the
        # largest total is the real one, and increments are never added up.
        if self._usage is None or _total(usage) >= _total(self._usage):
            self._usage = usage

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
                yield from self._take_tool_calls(message.get("tool_calls"))
        finish = choice.get("native_finish_reason") or choice.get("finish_reason")
        if not self.finished and isinstance(finish, str) and finish:
            self._finish_raw = finish


def _total(usage: Usage) -> int:
    return usage.input_tokens + usage.output_tokens


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


class OpenAIShapedClient(HttpChatClient):
    """Chat completions as MiniMax, Cloudsway and Workers AI speak them.

    With ``native_roles`` the persona uses MiniMax's role-play roles. Because M2-her has
    been seen to answer HTTP 500 when those roles are present, a 500 before any output
    is retried once with the persona folded into the system prompt, and says so.
    """

    max_tokens_field = "max_completion_tokens"
    native_roles = False
    reasoning_split = True

    def build_messages(self, request: ChatRequest, *, native: bool) -> list[dict[str, Any]]:
        persona = request.persona
        messages = native_messages(persona) if native else folded_messages(persona)
        for message in request.messages:
            if message.role == "assistant":
                messages.append(assistant_message(message))
            else:
                user: dict[str, Any] = {"role": "user", "content": message.content}
                if native and persona.user_name:
                    user["name"] = persona.user_name
                messages.append(user)
        return messages

    def build_body(
        self, request: ChatRequest, *, stream: bool, native: bool | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": self.build_messages(
                request, native=self.native_roles if native is None else native
            ),
            "stream": stream,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        if self.reasoning_split:
            body["reasoning_split"] = True
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.max_output_tokens is not None:
            body[self.max_tokens_field] = request.max_output_tokens
        if request.stop:
            body["stop"] = list(request.stop)
        if request.tools:
            body["tools"] = [dict(tool) for tool in request.tools]
        if request.tool_choice is not None:
            body["tool_choice"] = request.tool_choice
        return body

    def map_error(self, status: int, body: Any, headers: Mapping[str, str]) -> ProviderError:
        return minimax_error(status, body, headers)

    def new_parser(self) -> ChunkParser:
        return ChunkParser()

    async def parse_stream(
        self, response: Any, request: ChatRequest
    ) -> AsyncGenerator[StreamEvent, None]:
        parser = self.new_parser()
        payloads = json_payloads(
            response,
            self.endpoint.timeouts,
            finished=lambda: parser.finished,
            grace=self.finish_grace,
            produced=lambda: parser.streamed_text,
        )
        # The parser driven here, not in a generator of its own: a layer per token.
        async with aclosing(payloads):
            async for payload in payloads:  # None for a malformed frame
                for event in parser.feed(payload):
                    yield event
        for event in parser.close():
            yield event

    def parse_whole(self, payload: Any, request: ChatRequest) -> list[StreamEvent]:
        if not isinstance(payload, dict):
            raise ProtocolError(
                gettext_noop("The provider answered with something other than JSON.")
            )
        parser = self.new_parser()
        return [*parser.feed(payload), *parser.close()]

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        native = self.native_roles and uses_extra_roles(request.persona)
        produced = False
        try:
            async for event in self._stream_body(request, self.build_body(request, stream=True)):
                produced = True
                yield event
            return
        except OverloadedError as error:
            if produced or not native or error.status != 500:
                raise
        yield Notice(
            f"{request.model} answered HTTP 500 to the role-play roles, so Parley asked "
            "again with the persona folded into the system prompt."
        )
        body = self.build_body(request, stream=True, native=False)
        async for event in self._stream_body(request, body):
            yield event
