"""Documented limits are refused before sending; history is trimmed to fit the window."""

from __future__ import annotations

import pytest

from providers.catalog import (
    CATALOG,
    CLOUDFLARE,
    CLOUDSWAY,
    DASHSCOPE,
    MINIMAX_ANTHROPIC,
    MINIMAX_OPENAI,
    default_spec,
)
from providers.clients.budget import (
    calibrated_ratio,
    estimate_tokens,
    fit_to_window,
    message_tokens,
)
from providers.clients.errors import LimitExceededError
from providers.clients.limits import check_limits
from providers.clients.types import ChatMessage, ChatRequest, ExampleTurn, Persona

M27 = default_spec(MINIMAX_OPENAI, "MiniMax-M2.7")
HER = default_spec(MINIMAX_OPENAI, "M2-her")


def _request(**kwargs) -> ChatRequest:
    kwargs.setdefault("messages", (ChatMessage("user", "Hi"),))
    kwargs.setdefault("model", "MiniMax-M2.7")
    return ChatRequest(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperature": 0.0}, "Temperature must be 0 < value ≤ 1"),
        ({"temperature": 1.5}, "Temperature must be 0 < value ≤ 1"),
        ({"top_p": 0.0}, "Top-p must be 0 < value ≤ 1"),
        ({"stop": ("a", "b", "c", "d", "e")}, "At most 4 stop sequences"),
        ({"n": 2}, "n = 1 only"),
        ({"tool_choice": "required"}, 'tool_choice must be one of "none", "auto"'),
        ({"max_output_tokens": 204_801}, "Max output tokens is at most 204,800"),
    ],
)
def test_minimax_openai_limits_are_refused_with_a_message_naming_them(kwargs, message):
    with pytest.raises(LimitExceededError, match=message):
        check_limits(_request(**kwargs), M27, api="MiniMax")


def test_valid_parameters_pass_untouched():
    request = _request(
        temperature=1.0, top_p=0.95, max_output_tokens=2048, stop=("x",), tool_choice="auto"
    )
    check_limits(request, M27, api="MiniMax")


def test_m2_her_caps_output_at_2048():
    with pytest.raises(LimitExceededError, match="at most 2,048 for M2-her"):
        check_limits(_request(model="M2-her", max_output_tokens=4096), HER, api="MiniMax")


def test_cloudsway_caps_max_tokens_at_2048_and_allows_required():
    spec = default_spec(CLOUDSWAY, "MiniMax-M2.7")
    check_limits(_request(tool_choice="required", max_output_tokens=2048), spec, api="Cloudsway")
    with pytest.raises(LimitExceededError, match="2,048"):
        check_limits(_request(max_output_tokens=2049), spec, api="Cloudsway")


def test_the_anthropic_api_refuses_stop_sequences_it_would_ignore():
    spec = default_spec(MINIMAX_ANTHROPIC, "MiniMax-M2.7")
    with pytest.raises(LimitExceededError, match="does not support stop sequences"):
        check_limits(_request(stop=("END",)), spec, api="MiniMax Anthropic")


def test_workers_ai_allows_temperature_zero():
    check_limits(
        _request(temperature=0.0), default_spec(CLOUDFLARE, "minimax/m2.7"), api="Workers AI"
    )


def test_dashscope_carries_per_model_defaults_and_caps():
    small = default_spec(DASHSCOPE, "abab6.5s-chat")
    chatty = default_spec(DASHSCOPE, "abab6.5t-chat")
    assert small.temperature.default == 0.1 and chatty.temperature.default == 0.9
    assert small.max_output_tokens == 245_760 and chatty.max_output_tokens == 8_192
    # DashScope's own default of 256 cuts answers short: the catalog sends more.
    assert small.default_output_tokens > 256
    with pytest.raises(LimitExceededError, match="8,192"):
        check_limits(_request(max_output_tokens=9000), chatty, api="DashScope")


def test_every_catalog_model_has_a_sane_output_budget():
    for specs in CATALOG.values():
        for spec in specs:
            assert 0 < spec.default_output_tokens <= spec.max_output_tokens
            assert spec.default_output_tokens < spec.context_window


def test_estimates_are_conservative():
    english = "The quick brown fox jumps over the lazy dog. " * 20
    assert estimate_tokens(english) >= len(english.split())  # about a token per word or more
    assert estimate_tokens("你好世界") == 4


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        ("abcd", 2),
        ("café", 2),  # accented Latin counts as narrow
        ("\u2e7f\u2e80", 2),  # the last narrow and the first wide code point
        ("你好 world", 2 + 2),  # two wide, six narrow
        ("😀😀ab", 2 + 1),  # emoji (outside the BMP) are wide
        ("한국어 текст", 3 + 2),  # hangul wide; Cyrillic and the space narrow
    ],
)
def test_estimates_count_wide_characters_one_each_and_others_three_to_a_token(text, tokens):
    assert estimate_tokens(text) == tokens


def _long_history(turns: int) -> tuple[ChatMessage, ...]:
    messages = []
    for index in range(turns):
        messages.append(ChatMessage("user", f"Question {index}: " + "tell me more " * 40))
        messages.append(ChatMessage("assistant", f"Answer {index}: " + "here is more " * 40))
    messages.append(ChatMessage("user", "Latest question"))
    return tuple(messages)


def test_trimming_drops_the_oldest_turns_and_keeps_persona_and_latest():
    persona = Persona(system_prompt="Stay in character.", examples=(ExampleTurn("Hi", "Hello."),))
    request = ChatRequest(
        model="M2-her", messages=_long_history(20), persona=persona, max_output_tokens=512
    )
    result = fit_to_window(request, HER)
    assert result.dropped > 0
    kept = result.request.messages
    assert kept[-1].content == "Latest question" and kept[0].role == "user"
    assert result.request.persona == persona
    assert result.estimated_prompt_tokens <= (2048 - 512)


def test_a_history_that_fits_is_left_alone():
    request = ChatRequest(model="MiniMax-M2.7", messages=_long_history(3))
    result = fit_to_window(request, M27)
    assert result.dropped == 0 and result.request == request


def test_known_estimates_of_the_history_trim_it_exactly_as_estimating_it_again():
    persona = Persona(system_prompt="Stay in character.")
    request = ChatRequest(
        model="M2-her", messages=_long_history(20), persona=persona, max_output_tokens=512
    )
    known = [message_tokens(message) for message in request.messages[:-1]]
    assert fit_to_window(request, HER, known=known) == fit_to_window(request, HER)
    with pytest.raises(ValueError):
        fit_to_window(request, HER, known=[*known, 1, 1])


def test_a_message_too_long_for_the_window_is_refused_clearly():
    request = ChatRequest(
        model="M2-her", messages=(ChatMessage("user", "word " * 3000),), max_output_tokens=512
    )
    with pytest.raises(LimitExceededError, match="2,048 tokens of context"):
        fit_to_window(request, HER)


def test_calibration_moves_toward_reported_prompt_tokens():
    # We estimated 1,000 at ratio 1.0; the upstream counted 700: the ratio falls toward 0.7.
    ratio = calibrated_ratio(1.0, estimated=1000, reported=700)
    assert 0.7 < ratio < 1.0
    assert calibrated_ratio(1.0, estimated=0, reported=700) == 1.0
