"""MiniMax's OpenAI-compatible API: quirks, both error shapes, roles, history."""

from __future__ import annotations

import pytest

from providers.clients.base import gather
from providers.clients.errors import (
    AuthenticationError,
    ContentFilteredError,
    InsufficientQuotaError,
    InvalidRequestError,
    OverloadedError,
    RateLimitedError,
    UpstreamTimeoutError,
)
from providers.clients.openai_compat import ChunkParser, minimax_error
from providers.clients.types import (
    ChatMessage,
    ChatRequest,
    ExampleTurn,
    Notice,
    Persona,
    ReasoningDelta,
    TextDelta,
)
from tests.providers.conftest import make_client

ROLE_PLAY = Persona(
    system_prompt="You are Mara.",
    character_name="Mara",
    user_persona="A navigator",
    user_name="Nav",
    scene="The bridge",
    examples=(ExampleTurn("Hi", "Hello, navigator."),),
)


def _request(model="MiniMax-M2.7", **kwargs) -> ChatRequest:
    kwargs.setdefault("messages", (ChatMessage("user", "Hello there"),))
    return ChatRequest(model=model, **kwargs)


# Each quirk of PROTOCOLS.md part A, alone: the wire shows it, the user does not.
QUIRKS = {
    "empty-role": '"role": ""',
    "double-finish": '"content": "\\n<think>\\n"',
    "no-done": None,
    "split-think": "<thi",
    "cumulative-details": None,
    "final-completion": '"object": "chat.completion"',
    "never-ends": None,
}


@pytest.mark.parametrize("api", ["minimax", "cloudsway"])
@pytest.mark.parametrize("quirk", list(QUIRKS))
async def test_each_quirk_alone_is_handled(sim, api, quirk):
    plain = await gather(make_client(sim, api).stream(_request()))
    result = await gather(make_client(sim, api, quirks=quirk).stream(_request()))
    assert (result.text, result.reasoning) == (plain.text, plain.reasoning)
    assert result.usage == plain.usage
    raw = sim.requests[-1].raw
    if QUIRKS[quirk]:
        assert QUIRKS[quirk] in raw
    if quirk in ("no-done", "never-ends"):
        assert "[DONE]" not in raw
    if quirk == "cumulative-details":
        assert raw.count("The user wrote") > 5  # every snapshot repeats the start


def test_cumulative_reasoning_details_are_turned_into_deltas():
    parser = ChunkParser()
    texts = []
    for snapshot in ["Think", "Thinking", "Thinking hard"]:
        chunk = {"choices": [{"delta": {"reasoning_details": [{"index": 0, "text": snapshot}]}}]}
        texts += [event.text for event in parser.feed(chunk) if isinstance(event, ReasoningDelta)]
    assert texts == ["Think", "ing", " hard"]


def test_a_final_whole_completion_does_not_repeat_streamed_text():
    parser = ChunkParser()
    events = [*parser.feed({"choices": [{"delta": {"content": "Hello"}, "finish_reason": "stop"}]})]
    whole = {
        "object": "chat.completion",
        "choices": [{"message": {"content": "Hello"}, "finish_reason": "stop"}],
    }
    events += [*parser.feed(whole), *parser.close()]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Hello"


def test_reasoning_content_and_details_together_are_not_doubled():
    parser = ChunkParser()
    delta = {"reasoning_content": "Plan", "reasoning_details": [{"index": 0, "text": "Plan"}]}
    events = list(parser.feed({"choices": [{"delta": delta}]}))
    assert [e.text for e in events if isinstance(e, ReasoningDelta)] == ["Plan"]


def test_tool_calls_stream_by_index():
    parser = ChunkParser()
    first = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "lookup", "arguments": ""},
    }
    chunks = [
        {"choices": [{"delta": {"tool_calls": [first]}}]},
        {
            "choices": [
                {"delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"q": '}}]}}
            ]
        },
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": '"x"}'}}]}}]},
        {"choices": [{"delta": {}, "finish_reason": "tool_calls"}]},
    ]
    events = [event for chunk in chunks for event in parser.feed(chunk)] + list(parser.close())
    finish = events[-1]
    assert finish.reason == "tool_calls"
    call = finish.provider_data["assistant_message"]["tool_calls"][0]
    assert call["id"] == "call_1" and call["function"] == {
        "name": "lookup",
        "arguments": '{"q": "x"}',
    }


@pytest.mark.parametrize(
    ("status", "body", "error_type"),
    [
        # Shape 2: a real status with an error object.
        (
            401,
            {
                "type": "error",
                "error": {"type": "authorized_error", "message": "login fail (1004)"},
            },
            AuthenticationError,
        ),
        (
            400,
            {"type": "error", "error": {"type": "bad_request_error", "message": "bad (2013)"}},
            InvalidRequestError,
        ),
        (
            429,
            {"type": "error", "error": {"type": "rate_limit_error", "message": "rpm (1002)"}},
            RateLimitedError,
        ),
        (
            402,
            {
                "type": "error",
                "error": {"type": "insufficient_balance_error", "message": "pay (1008)"},
            },
            InsufficientQuotaError,
        ),
        (
            422,
            {"type": "error", "error": {"type": "unprocessable_entity_error", "message": "x"}},
            InvalidRequestError,
        ),
        (
            529,
            {"type": "error", "error": {"type": "overloaded_error", "message": "busy (1033)"}},
            OverloadedError,
        ),
        (
            500,
            {"type": "error", "error": {"type": "server_error", "message": "oops (1013)"}},
            OverloadedError,
        ),
        # Shape 1: HTTP 200 with a non-zero base_resp.
        (200, {"base_resp": {"status_code": 1004, "status_msg": "auth"}}, AuthenticationError),
        (200, {"base_resp": {"status_code": 1001, "status_msg": "timeout"}}, UpstreamTimeoutError),
        (200, {"base_resp": {"status_code": 1002, "status_msg": "rate"}}, RateLimitedError),
        (
            200,
            {"base_resp": {"status_code": 1008, "status_msg": "balance"}},
            InsufficientQuotaError,
        ),
        (
            200,
            {"base_resp": {"status_code": 1026, "status_msg": "sensitive"}},
            ContentFilteredError,
        ),
        (
            200,
            {"base_resp": {"status_code": 1027, "status_msg": "sensitive"}},
            ContentFilteredError,
        ),
        (200, {"base_resp": {"status_code": 1039, "status_msg": "tokens"}}, InvalidRequestError),
        (200, {"base_resp": {"status_code": 1041, "status_msg": "conn"}}, RateLimitedError),
        (200, {"base_resp": {"status_code": 2013, "status_msg": "params"}}, InvalidRequestError),
        (200, {"base_resp": {"status_code": 2045, "status_msg": "growth"}}, RateLimitedError),
        (200, {"base_resp": {"status_code": 2049, "status_msg": "key"}}, AuthenticationError),
        (200, {"base_resp": {"status_code": 2056, "status_msg": "usage"}}, InsufficientQuotaError),
        (503, None, OverloadedError),
    ],
)
def test_both_minimax_error_shapes_map_to_typed_errors(status, body, error_type):
    error = minimax_error(status, body, {})
    assert type(error) is error_type
    assert str(error)  # a sentence for the user


@pytest.mark.parametrize(
    ("fault", "error_type"),
    [
        ("base-resp=1004", AuthenticationError),
        ("base-resp=1026", ContentFilteredError),
        ("status=402", InsufficientQuotaError),
    ],
)
async def test_error_shapes_arrive_over_the_wire(sim, fault, error_type):
    with pytest.raises(error_type):
        await gather(make_client(sim, "minimax", fault=fault).stream(_request()))


async def test_it_sends_bearer_auth_reasoning_split_and_usage_option(sim):
    await gather(make_client(sim, "minimax").stream(_request(max_output_tokens=300)))
    sent = sim.requests[-1]
    assert sent.path == "/minimax/v1/chat/completions"
    assert sent.headers["authorization"].startswith("Bearer sk-test")
    assert sent.body["reasoning_split"] is True
    assert sent.body["stream_options"] == {"include_usage": True}
    assert sent.body["max_completion_tokens"] == 300


@pytest.mark.parametrize("api", ["minimax", "cloudsway"])
async def test_persona_maps_to_minimax_native_roles(sim, api):
    await gather(make_client(sim, api).stream(_request(persona=ROLE_PLAY)))
    roles = [(m["role"], m.get("name")) for m in sim.requests[-1].body["messages"]]
    assert roles == [
        ("system", "Mara"),
        ("user_system", "Nav"),
        ("group", None),
        ("sample_message_user", "Nav"),
        ("sample_message_ai", "Mara"),
        ("user", "Nav"),
    ]


async def test_m2_her_500_on_role_play_roles_retries_once_folded_and_says_so(sim):
    client = make_client(sim, "minimax", fault="her-500")
    events = [event async for event in client.stream(_request("M2-her", persona=ROLE_PLAY))]
    notices = [event.text for event in events if isinstance(event, Notice)]
    assert len(notices) == 1 and "folded" in notices[0]
    first, second = sim.requests[-2:]
    assert first.body["messages"][1]["role"] == "user_system"
    roles = {m["role"] for m in second.body["messages"]}
    assert roles == {"system", "user", "assistant"}
    assert "A navigator" in second.body["messages"][0]["content"]
    assert "Received:" in "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_a_500_without_role_play_roles_is_not_retried(sim):
    with pytest.raises(OverloadedError):
        await gather(make_client(sim, "minimax", fault="status=500").stream(_request("M2-her")))
    assert len(sim.requests) == 1


async def test_the_previous_assistant_turn_goes_back_unchanged(sim):
    client = make_client(sim, "minimax")
    first = await gather(client.stream(_request()))
    kept = first.finish.provider_data["assistant_message"]
    assert kept["reasoning_details"][0]["text"] == first.reasoning
    assert kept["reasoning_details"][0]["id"] == "reasoning-text-1"
    history = (
        ChatMessage("user", "Hello there"),
        ChatMessage(
            "assistant",
            first.text,
            reasoning=first.reasoning,
            provider_data=first.finish.provider_data,
        ),
        ChatMessage("user", "And then?"),
    )
    await gather(client.stream(_request(messages=history)))
    assert sim.requests[-1].body["messages"][1] == kept


async def test_inline_think_content_goes_back_with_its_tags(sim):
    client = make_client(sim, "minimax", quirks="split-think")
    first = await gather(client.stream(_request()))
    kept = first.finish.provider_data["assistant_message"]
    assert kept["content"].startswith("<think>\n") and "</think>" in kept["content"]
    assert "reasoning_details" not in kept


def test_a_stopped_reply_is_rebuilt_for_history():
    from providers.clients.openai_compat import assistant_message

    message = ChatMessage("assistant", "Partial", reasoning="Half a thought")
    assert assistant_message(message) == {
        "role": "assistant",
        "content": "Partial",
        "reasoning_details": [{"type": "reasoning.text", "text": "Half a thought", "index": 0}],
    }
