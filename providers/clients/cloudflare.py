"""Cloudflare Workers AI, model ``minimax/m2.7``.

Two endpoints: ``/accounts/{id}/ai/run`` wraps results in the v4 envelope
(``{"result", "success", "errors", "messages"}``), ``/accounts/{id}/ai/v1/chat/completions``
answers in the bare OpenAI shape. Through an AI Gateway the same calls go to
``gateway.ai.cloudflare.com/v1/{account}/{gateway}/workers-ai/…``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import httpx

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
    gettext_noop,
    upstream_said,
)
from providers.clients.http import Timeouts, bearer_endpoint, parse_retry_after
from providers.clients.openai_compat import ChunkParser, OpenAIShapedClient, minimax_payload_error
from providers.clients.types import ChatRequest, StreamEvent

GATEWAY_BASE = "https://gateway.ai.cloudflare.com/v1"

_CODES: dict[int, tuple[type[ProviderError], str | None]] = {
    10000: (AuthenticationError, None),
    5007: (ModelNotFoundError, None),
    5004: (InvalidRequestError, None),
    3006: (InvalidRequestError, "The request is too large for Workers AI."),
    3007: (UpstreamTimeoutError, None),
    3008: (UpstreamTimeoutError, "Workers AI aborted the request."),
    3036: (InsufficientQuotaError, "The Cloudflare account used its daily Workers AI allocation."),
    3040: (OverloadedError, "Workers AI is out of capacity for this model right now."),
    3030: (ContentFilteredError, None),
}
_STATUSES: dict[int, type[ProviderError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: ModelNotFoundError,
    408: UpstreamTimeoutError,
    413: InvalidRequestError,
    429: RateLimitedError,
}


def envelope_error(status: int, body: Any, headers: Mapping[str, str]) -> ProviderError:
    """Map the v4 envelope ``{"success": false, "errors": [{code, message}]}``."""
    retry_after = parse_retry_after(headers)
    if isinstance(body, dict) and body.get("base_resp"):
        error = minimax_payload_error(body)
        if error is not None:
            return error
    errors = body.get("errors") if isinstance(body, dict) else None
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    code = first.get("code")
    message = first.get("message") if isinstance(first.get("message"), str) else None
    cls: type[ProviderError]
    friendly: str | None = None
    if isinstance(code, int) and code in _CODES:
        cls, friendly = _CODES[code]
    else:
        cls = _STATUSES.get(status, OverloadedError if status >= 500 else ProviderError)
    if cls is ProviderError and status == 200:
        cls = InvalidRequestError
    text = friendly or (
        f"{cls.default_message} Workers AI said: {upstream_said(message)}"
        if message
        else cls.default_message
    )
    return cls(text, status=status, code=str(code) if code else None, retry_after=retry_after)


def _payload_error(payload: Mapping[str, Any]) -> ProviderError | None:
    # Some reports show success: false with HTTP 200, even mid-stream.
    if payload.get("success") is False or (payload.get("errors") and payload.get("result") is None):
        return envelope_error(200, payload, {})
    return minimax_payload_error(payload)


class CloudflareClient(OpenAIShapedClient):
    api_label = "Cloudflare Workers AI"
    max_tokens_field = "max_tokens"
    reasoning_split = False

    def __init__(
        self,
        *,
        api_token: str,
        account_id: str,
        base_url: str = "https://api.cloudflare.com/client/v4",
        gateway_id: str = "",
        style: Literal["run", "openai"] = "run",
        timeouts: Timeouts | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        extra_headers: Mapping[str, str] | None = None,
        finish_grace: float = 2.0,
    ) -> None:
        if gateway_id:
            root = f"{GATEWAY_BASE}/{account_id}/{gateway_id}/workers-ai"
        else:
            root = f"{base_url.rstrip('/')}/accounts/{account_id}/ai"
        super().__init__(
            bearer_endpoint(
                root, api_token, timeouts=timeouts, transport=transport, extra_headers=extra_headers
            ),
            finish_grace=finish_grace,
        )
        self.gateway = bool(gateway_id)
        self.style = style

    def path(self, request: ChatRequest, *, stream: bool) -> str:
        if self.style == "openai":
            return "/v1/chat/completions"
        return f"/{request.model}" if self.gateway else "/run"

    def build_body(
        self, request: ChatRequest, *, stream: bool, native: bool | None = None
    ) -> dict[str, Any]:
        body = super().build_body(request, stream=stream, native=False)
        if self.style == "openai":
            return body
        model = body.pop("model")
        return body if self.gateway else {"model": model, "input": body}

    def map_error(self, status: int, body: Any, headers: Mapping[str, str]) -> ProviderError:
        return envelope_error(status, body, headers)

    def new_parser(self) -> ChunkParser:
        return ChunkParser(payload_error=_payload_error)

    def parse_whole(self, payload: Any, request: ChatRequest) -> list[StreamEvent]:
        if isinstance(payload, dict) and "result" in payload and "choices" not in payload:
            error = _payload_error(payload)
            if error is not None:
                raise error
            payload = payload["result"]
            if isinstance(payload, dict) and "response" in payload and "choices" not in payload:
                raise ProtocolError(
                    gettext_noop("Workers AI answered in a format Parley does not know.")
                )
        return super().parse_whole(payload, request)
