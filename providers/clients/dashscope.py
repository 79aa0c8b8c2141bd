"""Alibaba DashScope's native text-generation API (abab6.5 and hosted MiniMax models).

``POST {base}/services/aigc/text-generation/generation`` with ``input.messages`` and
``parameters``. Streams with ``X-DashScope-SSE: enable``: no space after the colons, no
``[DONE]``, ``finish_reason`` the *string* ``"null"`` until the last event, cumulative
usage, and errors as ``event:error`` with a ``:HTTP_STATUS/400`` comment.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator, Mapping
from typing import Any

import httpx

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
from providers.clients.http import (
    Timeouts,
    bearer_endpoint,
    decode_json,
    parse_retry_after,
    sse_events,
)
from providers.clients.persona import folded_messages
from providers.clients.thinking import SnapshotOrDelta
from providers.clients.types import (
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

PATH = "/services/aigc/text-generation/generation"

_CODES: dict[str, tuple[type[ProviderError], str | None]] = {
    "InvalidParameter": (InvalidRequestError, None),
    "DataInspectionFailed": (ContentFilteredError, None),
    "Arrearage": (InsufficientQuotaError, "The DashScope account is in arrears."),
    "InvalidApiKey": (AuthenticationError, None),
    "AccessDenied": (AuthenticationError, "DashScope denied access to this model or workspace."),
    "ModelNotFound": (ModelNotFoundError, None),
    "Throttling": (RateLimitedError, None),
    "Throttling.RateQuota": (RateLimitedError, None),
    "Throttling.AllocationQuota": (
        InsufficientQuotaError,
        "The DashScope allocation quota is used up.",
    ),
    "InternalError": (OverloadedError, None),
}
_STATUSES: dict[int, type[ProviderError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: ModelNotFoundError,
    408: UpstreamTimeoutError,
    429: RateLimitedError,
}
_FINISH: dict[str, FinishReason] = {"stop": "stop", "length": "length", "tool_calls": "tool_calls"}


def dashscope_error(status: int, body: Any, headers: Mapping[str, str]) -> ProviderError:
    code = body.get("code") if isinstance(body, dict) else None
    message = body.get("message") if isinstance(body, dict) else None
    cls: type[ProviderError] | None = None
    friendly: str | None = None
    if isinstance(code, str):
        cls, friendly = _CODES.get(code, (None, None))
        if cls is None and code.startswith("Throttling"):
            cls = RateLimitedError
    if cls is None:
        cls = _STATUSES.get(status, OverloadedError if status >= 500 else ProviderError)
    text = friendly or (
        f"{cls.default_message} DashScope said: {upstream_said(message)}"
        if isinstance(message, str) and message
        else cls.default_message
    )
    return cls(
        text,
        status=status,
        code=code if isinstance(code, str) else None,
        retry_after=parse_retry_after(headers),
    )


class DashScopeClient(HttpChatClient):
    api_label = "Alibaba DashScope"

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = "https://dashscope.aliyuncs.com/api/v1",
        workspace: str = "",
        timeouts: Timeouts | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        extra_headers: Mapping[str, str] | None = None,
        finish_grace: float = 2.0,
    ) -> None:
        super().__init__(
            bearer_endpoint(
                base_url,
                api_key,
                headers={"X-DashScope-WorkSpace": workspace} if workspace else None,
                timeouts=timeouts,
                transport=transport,
                extra_headers=extra_headers,
            ),
            finish_grace=finish_grace,
        )

    def path(self, request: ChatRequest, *, stream: bool) -> str:
        return PATH

    def stream_headers(self) -> Mapping[str, str]:
        return {"X-DashScope-SSE": "enable", "Accept": "text/event-stream"}

    def build_body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        messages = folded_messages(request.persona)
        messages += [
            {"role": message.role, "content": message.content}
            for message in request.messages
            if message.content
        ]
        parameters: dict[str, Any] = {"result_format": "message"}
        if stream:
            # Without it every event repeats the whole text so far.
            parameters["incremental_output"] = True
        if request.temperature is not None:
            parameters["temperature"] = request.temperature
        if request.top_p is not None:
            parameters["top_p"] = request.top_p
        if request.max_output_tokens is not None:
            parameters["max_tokens"] = request.max_output_tokens
        if request.stop:
            parameters["stop"] = list(request.stop)
        if request.tools:
            parameters["tools"] = [dict(tool) for tool in request.tools]
        if request.tool_choice is not None:
            parameters["tool_choice"] = request.tool_choice
        return {"model": request.model, "input": {"messages": messages}, "parameters": parameters}

    def map_error(self, status: int, body: Any, headers: Mapping[str, str]) -> ProviderError:
        return dashscope_error(status, body, headers)

    async def parse_stream(
        self, response: Any, request: ChatRequest
    ) -> AsyncGenerator[StreamEvent, None]:
        state = _State()
        events = sse_events(
            response,
            self.endpoint.timeouts,
            produced=lambda: bool(state.text.text or state.reasoning.text),
        )
        try:
            async for event in events:
                if event.event == "error":
                    status = _status_comment(event.comments) or 400
                    raise dashscope_error(status, decode_json(event.data), {})
                if not event.data:
                    continue
                payload = decode_json(event.data)
                if not isinstance(payload, dict):
                    skipped_malformed_chunk("DashScope")
                    continue
                for item in state.feed(payload):
                    yield item
                if state.finish_raw is not None:
                    break  # the last event; DashScope sends no [DONE]
        finally:
            await events.aclose()
        for item in state.close():
            yield item

    def parse_whole(self, payload: Any, request: ChatRequest) -> list[StreamEvent]:
        if not isinstance(payload, dict):
            raise ProtocolError(gettext_noop("DashScope answered with something other than JSON."))
        state = _State()
        return [*state.feed(payload), *state.close()]


def _status_comment(comments: list[str]) -> int | None:
    for comment in comments:
        if comment.startswith("HTTP_STATUS/"):
            try:
                return int(comment.split("/", 1)[1])
            except ValueError:
                return None
    return None


class _State:
    def __init__(self) -> None:
        self.text = SnapshotOrDelta()
        self.reasoning = SnapshotOrDelta()
        self.usage: Usage | None = None
        self.finish_raw: str | None = None
        self.tool_calls: list[Any] = []

    def feed(self, payload: Mapping[str, Any]) -> Iterator[StreamEvent]:
        if payload.get("code") and not payload.get("output"):
            raise dashscope_error(400, payload, {})
        usage = payload.get("usage")
        if isinstance(usage, dict):
            details = usage.get("output_tokens_details")
            self.usage = Usage(  # cumulative in every event: replace, never add
                input_tokens=int(usage.get("input_tokens") or 0),
                output_tokens=int(usage.get("output_tokens") or 0),
                reasoning_tokens=int(details.get("reasoning_tokens") or 0)
                if isinstance(details, dict)
                else 0,
                cached_tokens=int(
                    (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
                )
                if isinstance(usage.get("prompt_tokens_details"), dict)
                else 0,
            )
        output = payload.get("output")
        choices = output.get("choices") if isinstance(output, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            # Older result_format "text" answers put the text in output.text.
            if isinstance(output, dict) and isinstance(output.get("text"), str):
                delta = self.text.feed(output["text"])
                if delta:
                    yield TextDelta(delta)
                self._finish(output.get("finish_reason"))
            return
        choice = choices[0]
        raw_message = choice.get("message")
        message: dict[str, Any] = raw_message if isinstance(raw_message, dict) else {}
        reasoning = message.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            delta = self.reasoning.feed(reasoning)
            if delta:
                yield ReasoningDelta(delta)
        content = message.get("content")
        if isinstance(content, str) and content:
            delta = self.text.feed(content)
            if delta:
                yield TextDelta(delta)
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            for position, call in enumerate(calls):
                if isinstance(call, dict):
                    raw_function = call.get("function")
                    function: dict[str, Any] = (
                        raw_function if isinstance(raw_function, dict) else {}
                    )
                    yield ToolCallDelta(
                        index=int(call.get("index", position)),
                        id=call.get("id"),
                        name=function.get("name"),
                        arguments=function.get("arguments") or "",
                    )
        self._finish(choice.get("finish_reason"))

    def _finish(self, raw: Any) -> None:
        # While streaming DashScope sends the *string* "null".
        if isinstance(raw, str) and raw and raw != "null":
            self.finish_raw = raw

    def close(self) -> Iterator[StreamEvent]:
        if self.usage is not None:
            yield UsageReport(self.usage)
        if self.finish_raw is None:
            raise ended_early(produced=bool(self.text.text or self.reasoning.text))
        yield Finish(_FINISH.get(self.finish_raw, "unknown"), raw_reason=self.finish_raw)
