"""Cloudsway MaaS: MiniMax's protocol under a per-deployment endpoint path."""

from __future__ import annotations

import pytest

from providers.clients.base import gather
from providers.clients.errors import (
    AuthenticationError,
    InvalidRequestError,
    ModelNotFoundError,
    OverloadedError,
    RateLimitedError,
    UpstreamTimeoutError,
)
from providers.clients.types import ChatMessage, ChatRequest
from tests.providers.conftest import make_client

REQUEST = ChatRequest(
    model="MiniMax-M2.7", messages=(ChatMessage("user", "Hi"),), max_output_tokens=2048
)


async def test_it_posts_under_the_endpoint_path_with_max_tokens(sim):
    await gather(make_client(sim, "cloudsway").stream(REQUEST))
    sent = sim.requests[-1]
    assert sent.path == "/cloudsway/v1/ai/ep-42/chat/completions"
    assert sent.body["max_tokens"] == 2048 and sent.body["reasoning_split"] is True


async def test_native_finish_reason_and_a_renamed_model_are_accepted(sim):
    result = await make_client(sim, "cloudsway").complete(REQUEST)
    raw = sim.requests[-1].raw
    assert '"native_finish_reason": "stop"' in raw and "MaaS_Minimax_M2.7_20260318" in raw
    assert result.finish.raw_reason == "stop" and result.reasoning


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, InvalidRequestError),
        (401, AuthenticationError),
        (403, AuthenticationError),  # the caller's IP is not allow-listed
        (404, ModelNotFoundError),
        (409, InvalidRequestError),
        (429, RateLimitedError),
        (500, OverloadedError),
        (503, OverloadedError),
        (504, UpstreamTimeoutError),
    ],
)
async def test_documented_http_errors_map_to_typed_errors(sim, status, error_type):
    client = make_client(sim, "cloudsway", fault=f"status={status}")
    with pytest.raises(error_type):
        await gather(client.stream(REQUEST))
