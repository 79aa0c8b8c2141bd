"""What the upstream clients share: streaming and whole-answer calls over one endpoint."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

from providers.clients.errors import ProtocolError, ProviderError, gettext_noop
from providers.clients.http import Endpoint, decode_json, open_stream
from providers.clients.types import (
    ChatRequest,
    Completion,
    Finish,
    Notice,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
)


async def gather(events: AsyncIterator[StreamEvent]) -> Completion:
    """Collect a stream of events into one :class:`Completion`."""
    text: list[str] = []
    reasoning: list[str] = []
    calls: dict[int, ToolCallDelta] = {}
    notices: list[str] = []
    usage: Usage | None = None
    finish: Finish | None = None
    async for event in events:
        if isinstance(event, TextDelta):
            text.append(event.text)
        elif isinstance(event, ReasoningDelta):
            reasoning.append(event.text)
        elif isinstance(event, ToolCallDelta):
            known = calls.get(event.index)
            calls[event.index] = ToolCallDelta(
                index=event.index,
                id=event.id or (known.id if known else None),
                name=event.name or (known.name if known else None),
                arguments=(known.arguments if known else "") + event.arguments,
            )
        elif isinstance(event, UsageReport):
            usage = event.usage
        elif isinstance(event, Notice):
            notices.append(event.text)
        elif isinstance(event, Finish):
            finish = event
    if finish is None:
        raise ProtocolError(gettext_noop("The provider's answer ended without finishing."))
    return Completion(
        text="".join(text),
        reasoning="".join(reasoning),
        finish=finish,
        usage=usage,
        tool_calls=tuple(calls[index] for index in sorted(calls)),
        notices=tuple(notices),
    )


class HttpChatClient:
    """One upstream API over one :class:`Endpoint`. Subclasses supply the wire format."""

    api_label = "the provider"

    def __init__(self, endpoint: Endpoint, *, finish_grace: float = 2.0) -> None:
        self.endpoint = endpoint
        self.finish_grace = finish_grace

    # --- what a subclass provides ---------------------------------------------

    def path(self, request: ChatRequest, *, stream: bool) -> str:
        raise NotImplementedError

    def build_body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        raise NotImplementedError

    def stream_headers(self) -> Mapping[str, str]:
        return {}

    def map_error(self, status: int, body: Any, headers: Mapping[str, str]) -> ProviderError:
        raise NotImplementedError

    def parse_stream(
        self, response: Any, request: ChatRequest
    ) -> AsyncGenerator[StreamEvent, None]:
        raise NotImplementedError

    def parse_whole(self, payload: Any, request: ChatRequest) -> list[StreamEvent]:
        raise NotImplementedError

    # --- the interface --------------------------------------------------------

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        async for event in self._stream_body(request, self.build_body(request, stream=True)):
            yield event

    async def _stream_body(
        self, request: ChatRequest, body: dict[str, Any]
    ) -> AsyncGenerator[StreamEvent, None]:
        async with open_stream(
            self.endpoint,
            self.path(request, stream=True),
            body,
            map_error=self.map_error,
            extra_headers=self.stream_headers(),
        ) as response:
            if "text/event-stream" not in response.headers.get("content-type", ""):
                # Errors (and some proxies' answers) come back as one JSON body.
                payload = decode_json(await response.aread())
                for event in self.parse_whole(payload, request):
                    yield event
                return
            events = self.parse_stream(response, request)
            try:
                async for event in events:
                    yield event
            finally:
                await events.aclose()

    async def complete(self, request: ChatRequest) -> Completion:
        async with open_stream(
            self.endpoint,
            self.path(request, stream=False),
            self.build_body(request, stream=False),
            map_error=self.map_error,
        ) as response:
            payload = decode_json(await response.aread())

        async def replay() -> AsyncGenerator[StreamEvent, None]:
            for event in self.parse_whole(payload, request):
                yield event

        return await gather(replay())
