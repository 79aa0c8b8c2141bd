"""Alibaba DashScope's native API: its own SSE dialect, codes and parameters."""

from __future__ import annotations

import pytest

from providers.clients.base import gather
from providers.clients.dashscope import DashScopeClient, dashscope_error
from providers.clients.errors import (
    AuthenticationError,
    ContentFilteredError,
    InsufficientQuotaError,
    InvalidRequestError,
    ModelNotFoundError,
    OverloadedError,
    RateLimitedError,
)
from providers.clients.types import ChatMessage, ChatRequest, ExampleTurn, Persona
from tests.providers.conftest import API_KEY, make_client


def _request(model="abab6.5s-chat", **kwargs) -> ChatRequest:
    kwargs.setdefault("messages", (ChatMessage("user", "Hello there"),))
    kwargs.setdefault("max_output_tokens", 2048)
    return ChatRequest(model=model, **kwargs)


async def test_it_asks_for_sse_message_format_incremental_output_and_a_real_max_tokens(sim):
    await gather(make_client(sim, "dashscope").stream(_request(temperature=0.1)))
    sent = sim.requests[-1]
    assert sent.path == "/dashscope/api/v1/services/aigc/text-generation/generation"
    assert sent.headers["x-dashscope-sse"] == "enable"
    assert sent.headers["accept"] == "text/event-stream"
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.body["parameters"] == {
        "result_format": "message",
        "incremental_output": True,
        "temperature": 0.1,
        "max_tokens": 2048,
    }


async def test_its_sse_dialect_is_read(sim):
    result = await gather(make_client(sim, "dashscope").stream(_request()))
    raw = sim.requests[-1].raw
    assert "id:1\nevent:result\n:HTTP_STATUS/200\ndata:{" in raw  # no spaces after colons
    assert '"finish_reason":"null"' in raw and "[DONE]" not in raw
    assert "Received:" in result.text and result.finish.reason == "stop"
    assert result.reasoning == ""  # abab models do not think
    assert result.usage.output_tokens > 10  # cumulative, taken as is


async def test_minimax_models_on_dashscope_stream_reasoning_content(sim):
    result = await gather(make_client(sim, "dashscope").stream(_request("MiniMax-M2.5")))
    assert result.reasoning.startswith("The user wrote")


async def test_whole_text_events_are_not_repeated(sim):
    plain = await gather(make_client(sim, "dashscope").stream(_request("MiniMax-M2.5")))
    full = await gather(
        make_client(sim, "dashscope", quirks="full-output").stream(_request("MiniMax-M2.5"))
    )
    assert (full.text, full.reasoning) == (plain.text, plain.reasoning)


async def test_the_workspace_header_is_sent_when_set(sim):
    client = DashScopeClient(
        api_key=API_KEY, base_url=f"{sim.base_url}/dashscope/api/v1", workspace="ws_1"
    )
    await gather(client.stream(_request()))
    assert sim.requests[-1].headers["x-dashscope-workspace"] == "ws_1"


async def test_the_persona_is_folded_into_system_and_few_shot_turns(sim):
    persona = Persona(
        system_prompt="Be brief.", scene="A tavern", examples=(ExampleTurn("Hi", "Hey."),)
    )
    await gather(make_client(sim, "dashscope").stream(_request(persona=persona)))
    messages = sim.requests[-1].body["input"]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert "Scene: A tavern" in messages[0]["content"]


async def test_an_error_event_mid_stream_is_mapped(sim):
    with pytest.raises(ContentFilteredError):
        await gather(
            make_client(sim, "dashscope", fault="stream-error=DataInspectionFailed").stream(
                _request()
            )
        )
    assert "event:error\n:HTTP_STATUS/400" in sim.requests[-1].raw


@pytest.mark.parametrize(
    ("code", "status", "error_type"),
    [
        ("InvalidParameter", 400, InvalidRequestError),
        ("DataInspectionFailed", 400, ContentFilteredError),
        ("Arrearage", 400, InsufficientQuotaError),
        ("InvalidApiKey", 401, AuthenticationError),
        ("AccessDenied", 403, AuthenticationError),
        ("ModelNotFound", 404, ModelNotFoundError),
        ("Throttling", 429, RateLimitedError),
        ("Throttling.RateQuota", 429, RateLimitedError),
        ("Throttling.AllocationQuota", 429, InsufficientQuotaError),
        ("InternalError", 500, OverloadedError),
    ],
)
def test_codes_map_to_typed_errors(code, status, error_type):
    error = dashscope_error(status, {"code": code, "message": "m", "request_id": "r"}, {})
    assert type(error) is error_type and error.code == code


@pytest.mark.parametrize(
    ("fault", "error_type"),
    [("ds-code=Arrearage", InsufficientQuotaError), ("status=404", ModelNotFoundError)],
)
async def test_error_bodies_arrive_over_the_wire(sim, fault, error_type):
    with pytest.raises(error_type):
        await gather(make_client(sim, "dashscope", fault=fault).stream(_request()))
