"""MiniMax's Anthropic-compatible Messages API."""

from __future__ import annotations

import pytest

from providers.clients.base import gather
from providers.clients.errors import (
    AuthenticationError,
    InsufficientQuotaError,
    InvalidRequestError,
    OverloadedError,
    UpstreamConnectionError,
)
from providers.clients.minimax_anthropic import _MessageState
from providers.clients.types import ChatMessage, ChatRequest, ExampleTurn, Persona, TextDelta
from tests.providers.conftest import API_KEY, make_client


def _request(**kwargs) -> ChatRequest:
    kwargs.setdefault("messages", (ChatMessage("user", "Hello there"),))
    return ChatRequest(model="MiniMax-M2.7", max_output_tokens=2048, **kwargs)


QUIRKS = {
    "ping": '"type": "ping"',
    "text-start-repeat": '"content_block": {"type": "text", "text": "',
    "stray-done": "[DONE]",
    "event-mismatch": "event: message\n",
}


@pytest.mark.parametrize("quirk", list(QUIRKS))
async def test_each_quirk_alone_is_handled(sim, quirk):
    plain = await gather(make_client(sim, "anthropic").stream(_request()))
    result = await gather(make_client(sim, "anthropic", quirks=quirk).stream(_request()))
    assert (result.text, result.reasoning, result.usage) == (
        plain.text,
        plain.reasoning,
        plain.usage,
    )
    assert QUIRKS[quirk] in sim.requests[-1].raw


async def test_it_sends_both_auth_headers_the_version_and_a_max_tokens(sim):
    await gather(make_client(sim, "anthropic").stream(_request()))
    sent = sim.requests[-1]
    assert sent.path == "/minimax/anthropic/v1/messages"
    assert sent.headers["x-api-key"] == API_KEY
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.body["max_tokens"] == 2048 and sent.body["stream"] is True


async def test_thinking_blocks_go_back_byte_for_byte_with_their_signatures(sim):
    client = make_client(sim, "anthropic")
    first = await gather(client.stream(_request()))
    blocks = first.finish.provider_data["content"]
    assert [block["type"] for block in blocks] == ["thinking", "text"]
    assert blocks[0]["thinking"] == first.reasoning and len(blocks[0]["signature"]) == 64
    history = (
        ChatMessage("user", "Hello there"),
        ChatMessage(
            "assistant",
            first.text,
            reasoning=first.reasoning,
            provider_data=first.finish.provider_data,
        ),
        ChatMessage("user", "Go on"),
    )
    second = await gather(client.stream(_request(messages=history)))
    assert sim.requests[-1].body["messages"][1] == {"role": "assistant", "content": blocks}
    assert "1 signed thinking block(s) verified" in second.text


async def test_an_altered_thinking_block_is_refused_by_the_api(sim):
    client = make_client(sim, "anthropic")
    first = await gather(client.stream(_request()))
    blocks = [dict(block) for block in first.finish.provider_data["content"]]
    blocks[0]["thinking"] += " "
    history = (
        ChatMessage("user", "Hello there"),
        ChatMessage("assistant", first.text, provider_data={"content": blocks}),
        ChatMessage("user", "Go on"),
    )
    with pytest.raises(InvalidRequestError, match="signature"):
        await gather(client.stream(_request(messages=history)))


async def test_the_persona_is_folded_into_system_and_few_shot_turns(sim):
    persona = Persona(
        system_prompt="You are Mara.",
        user_persona="A navigator",
        scene="The bridge",
        examples=(ExampleTurn("Hi", "Hello, navigator."),),
    )
    await gather(make_client(sim, "anthropic").stream(_request(persona=persona)))
    body = sim.requests[-1].body
    assert "You are Mara." in body["system"] and "A navigator" in body["system"]
    assert "Scene: The bridge" in body["system"]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]


async def test_a_greeting_before_the_first_user_turn_joins_the_system_prompt(sim):
    history = (ChatMessage("assistant", "Ahoy."), ChatMessage("user", "Hi"))
    await gather(make_client(sim, "anthropic").stream(_request(messages=history)))
    body = sim.requests[-1].body
    assert body["messages"][0]["role"] == "user" and "Ahoy." in body["system"]


def test_an_error_event_mid_stream_is_mapped():
    state = _MessageState()
    with pytest.raises(OverloadedError):
        list(
            state.feed(
                {"type": "error", "error": {"type": "overloaded_error", "message": "busy (1033)"}}
            )
        )


def test_a_text_block_start_repeated_by_the_next_delta_is_not_doubled():
    state = _MessageState()
    events = [
        *state.feed(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": "Hel"},
            }
        ),
        *state.feed(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Hel"},
            }
        ),
        *state.feed(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "lo"},
            }
        ),
    ]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Hello"


def test_tool_use_blocks_stream_as_tool_call_deltas_and_keep_their_input():
    state = _MessageState()
    start = {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "tool_use", "id": "t1", "name": "lookup", "input": {}},
    }
    list(state.feed(start))
    list(
        state.feed(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": '{"q": "x"}'},
            }
        )
    )
    list(
        state.feed(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use"},
                "usage": {"output_tokens": 5},
            }
        )
    )
    finish = list(state.close())[-1]
    assert finish.reason == "tool_calls"
    assert finish.provider_data["content"] == [
        {"type": "tool_use", "id": "t1", "name": "lookup", "input": {"q": "x"}}
    ]


@pytest.mark.parametrize(
    ("fault", "error_type"),
    [
        ("status=401", AuthenticationError),
        ("status=402", InsufficientQuotaError),
        ("status=529", OverloadedError),
    ],
)
async def test_errors_map_to_typed_errors(sim, fault, error_type):
    with pytest.raises(error_type):
        await gather(make_client(sim, "anthropic", fault=fault).stream(_request()))


async def test_a_stream_without_message_stop_is_interrupted(sim):
    with pytest.raises(UpstreamConnectionError):
        await gather(make_client(sim, "anthropic", fault="break-after=40").stream(_request()))
