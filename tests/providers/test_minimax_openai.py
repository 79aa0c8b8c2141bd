"""The MiniMax OpenAI-compatible client against the simulator, over loopback."""

from __future__ import annotations

import asyncio
import time

import pytest

from providers.clients.errors import (
    AuthenticationError,
    ContentFilteredError,
    InsufficientQuotaError,
    OverloadedError,
    RateLimitedError,
    UpstreamConnectionError,
    UpstreamTimeoutError,
)
from providers.clients.http import Timeouts
from providers.clients.minimax_openai import MiniMaxOpenAIClient
from providers.clients.types import (
    ChatMessage,
    ChatRequest,
    ExampleTurn,
    Finish,
    Persona,
    ReasoningDelta,
    TextDelta,
    UsageReport,
)
from providers.simulator import Simulator

API_KEY = "sk-test-should-never-leak-0123456789"


@pytest.fixture
async def sim():
    simulator = Simulator(tokens_per_second=2000)
    await simulator.start()
    yield simulator
    await simulator.close()


def _client(sim: Simulator, *, fault: str = "", pace: float | None = None, timeouts=None):
    headers = {}
    if fault:
        headers["x-simulator-fault"] = fault
    if pace:
        headers["x-simulator-pace"] = str(pace)
    return MiniMaxOpenAIClient(
        base_url=f"{sim.base_url}/v1", api_key=API_KEY, extra_headers=headers, timeouts=timeouts
    )


def _request(**kwargs) -> ChatRequest:
    return ChatRequest(
        model="MiniMax-M2.7", messages=(ChatMessage("user", "Hello there"),), **kwargs
    )


async def _collect(client, request=None):
    events = [event async for event in client.stream(request or _request())]
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    return events, text, reasoning


async def test_it_streams_text_reasoning_usage_and_finish(sim):
    events, text, reasoning = await _collect(_client(sim))
    assert "You said: “Hello there”" in text
    assert "```python" in text
    assert reasoning.startswith("The user wrote “Hello there”")
    usage = next(e for e in events if isinstance(e, UsageReport)).usage
    assert usage.input_tokens == 120 and usage.output_tokens > 0 and usage.reasoning_tokens > 0
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.reason == "stop"
    assert finish.provider_data["reasoning_details"][0]["text"] == reasoning


async def test_it_sends_bearer_auth_reasoning_split_and_usage_option(sim):
    await _collect(_client(sim))
    sent = sim.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.body["reasoning_split"] is True
    assert sent.body["stream_options"] == {"include_usage": True}


async def test_persona_maps_to_minimax_native_roles(sim):
    persona = Persona(
        system_prompt="You are Mara.",
        character_name="Mara",
        user_persona="A navigator",
        user_name="Nav",
        scene="The bridge",
        examples=(ExampleTurn("Hi", "Hello, navigator."),),
    )
    await _collect(_client(sim), _request(persona=persona))
    roles = [(m["role"], m.get("name")) for m in sim.requests[-1].body["messages"]]
    assert roles == [
        ("system", "Mara"),
        ("user_system", "Nav"),
        ("group", None),
        ("sample_message_user", "Nav"),
        ("sample_message_ai", "Mara"),
        ("user", "Nav"),
    ]


async def test_previous_assistant_turn_goes_back_with_its_reasoning_details(sim):
    details = [{"type": "reasoning.text", "id": "r1", "index": 0, "text": "I thought."}]
    history = (
        ChatMessage("user", "First"),
        ChatMessage(
            "assistant",
            "Answer",
            reasoning="I thought.",
            provider_data={"reasoning_details": details},
        ),
        ChatMessage("user", "Second"),
    )
    await _collect(_client(sim), ChatRequest(model="MiniMax-M2.7", messages=history))
    assistant = sim.requests[-1].body["messages"][1]
    assert assistant == {"role": "assistant", "content": "Answer", "reasoning_details": details}


@pytest.mark.parametrize(
    ("fault", "error_type"),
    [
        ("status=401", AuthenticationError),
        ("status=402", InsufficientQuotaError),
        ("status=500", OverloadedError),
        ("status=529", OverloadedError),
        ("base-resp=1004", AuthenticationError),
        ("base-resp=1026", ContentFilteredError),
        ("base-resp=2056", InsufficientQuotaError),
    ],
)
async def test_error_statuses_and_bodies_map_to_typed_errors(sim, fault, error_type):
    with pytest.raises(error_type) as caught:
        await _collect(_client(sim, fault=fault))
    assert API_KEY not in str(caught.value)


async def test_rate_limit_carries_retry_after(sim):
    with pytest.raises(RateLimitedError) as caught:
        await _collect(_client(sim, fault="status=429,retry-after=7"))
    assert caught.value.retry_after == 7.0
    assert caught.value.retryable


async def test_a_stream_that_breaks_midway_is_a_connection_error(sim):
    with pytest.raises(UpstreamConnectionError):
        await _collect(_client(sim, fault="break-after=12"))


async def test_a_silent_stream_times_out(sim):
    timeouts = Timeouts(connect=2, first_token=2, between_tokens=0.3, total=10)
    with pytest.raises(UpstreamTimeoutError, match="silent"):
        await _collect(_client(sim, fault="silence-after=5", timeouts=timeouts))


async def test_a_malformed_chunk_is_skipped_and_the_reply_completes(sim):
    events, text, _ = await _collect(_client(sim, fault="malformed-after=3"))
    assert isinstance(events[-1], Finish)
    assert "Received:" in text


async def test_closing_the_stream_closes_the_upstream_connection(sim):
    client = _client(sim, pace=20)
    stream = client.stream(_request())
    await anext(stream)
    closed_at = time.monotonic()
    await stream.aclose()
    await asyncio.sleep(0.1)
    record = sim.requests[-1]
    assert record.disconnected_at is not None
    assert record.disconnected_at - closed_at < 0.25
    assert not record.finished


async def test_connection_refused_is_a_connection_error():
    client = MiniMaxOpenAIClient(base_url="http://127.0.0.1:9/v1", api_key=API_KEY)
    with pytest.raises(UpstreamConnectionError) as caught:
        await _collect(client)
    assert API_KEY not in str(caught.value)
