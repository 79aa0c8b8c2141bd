"""Behaviour every client shares, checked against the simulator for each of the APIs."""

from __future__ import annotations

import asyncio
import time

import pytest

from providers.clients.base import gather
from providers.clients.errors import (
    AuthenticationError,
    OverloadedError,
    ProviderError,
    RateLimitedError,
    UpstreamConnectionError,
    UpstreamTimeoutError,
)
from providers.clients.http import Timeouts
from providers.clients.types import ChatMessage, ChatRequest, Finish, TextDelta
from tests.providers.conftest import API_KEY, MODELS, make_client

APIS = list(MODELS)


def _request(api: str, text: str = "Hello there", **kwargs) -> ChatRequest:
    return ChatRequest(
        model=MODELS[api], messages=(ChatMessage("user", text),), max_output_tokens=1000, **kwargs
    )


@pytest.mark.parametrize("api", APIS)
async def test_each_api_streams_text_reasoning_usage_and_finish(sim, api):
    result = await gather(make_client(sim, api).stream(_request(api)))
    assert "You said: “Hello there”" in result.text and "```python" in result.text
    assert result.reasoning.startswith("The user wrote “Hello there”")
    assert not result.reasoning.endswith("\n") and not result.text.startswith("\n")
    assert result.finish.reason == "stop"
    assert result.usage is not None and result.usage.input_tokens > 0
    assert result.usage.output_tokens > 0


@pytest.mark.parametrize("api", APIS)
async def test_each_api_answers_the_same_without_streaming(sim, api):
    client = make_client(sim, api)
    streamed = await gather(client.stream(_request(api)))
    whole = await client.complete(_request(api))
    assert (whole.text, whole.reasoning) == (streamed.text, streamed.reasoning)
    assert whole.finish.reason == "stop"


@pytest.mark.parametrize("api", APIS)
async def test_every_quirk_at_once_changes_nothing_the_user_sees(sim, api):
    plain = await gather(make_client(sim, api).stream(_request(api)))
    quirky = await gather(make_client(sim, api, quirks="all").stream(_request(api)))
    assert (quirky.text, quirky.reasoning, quirky.finish.reason) == (
        plain.text,
        plain.reasoning,
        plain.finish.reason,
    )
    assert quirky.usage == plain.usage


@pytest.mark.parametrize("api", APIS)
async def test_a_bad_key_is_an_authentication_error_without_the_key(sim, api):
    with pytest.raises(AuthenticationError) as caught:
        await gather(make_client(sim, api, fault="status=401").stream(_request(api)))
    assert API_KEY not in str(caught.value)
    assert caught.value.status == 401


@pytest.mark.parametrize("api", APIS)
async def test_rate_limits_carry_retry_after(sim, api):
    # Workers AI's 429 carries code 3040, "out of capacity": overloaded, still retryable.
    expected = OverloadedError if api.startswith("cloudflare") else RateLimitedError
    with pytest.raises(expected) as caught:
        await gather(make_client(sim, api, fault="status=429,retry-after=3").stream(_request(api)))
    assert caught.value.retry_after == 3.0 and caught.value.retryable


@pytest.mark.parametrize("api", APIS)
async def test_a_stream_broken_midway_is_a_connection_error(sim, api):
    with pytest.raises(UpstreamConnectionError, match="ended before the reply finished"):
        await gather(make_client(sim, api, fault="break-after=10").stream(_request(api)))


@pytest.mark.parametrize("api", APIS)
async def test_silence_mid_stream_times_out(sim, api):
    timeouts = Timeouts(connect=2, first_token=2, between_tokens=0.3, total=10)
    client = make_client(sim, api, fault="silence-after=4", timeouts=timeouts)
    with pytest.raises(UpstreamTimeoutError, match="silent"):
        await gather(client.stream(_request(api)))


@pytest.mark.parametrize("api", APIS)
async def test_a_malformed_chunk_is_skipped(sim, api, caplog):
    result = await gather(make_client(sim, api, fault="malformed-after=3").stream(_request(api)))
    assert "Received:" in result.text and result.finish.reason == "stop"
    assert "Skipped a malformed stream chunk" in caplog.text
    assert "broken" not in caplog.text  # the chunk itself is never logged


@pytest.mark.parametrize("api", APIS)
async def test_closing_the_stream_closes_the_connection_within_250_ms(sim, api):
    stream = make_client(sim, api, pace=20).stream(_request(api))
    async for event in stream:
        if isinstance(event, TextDelta | Finish) or event:
            break
    closed_at = time.monotonic()
    await stream.aclose()
    await asyncio.sleep(0.15)
    record = sim.requests[-1]
    assert record.disconnected_at is not None and not record.finished
    assert record.disconnected_at - closed_at < 0.25


@pytest.mark.parametrize("api", APIS)
async def test_a_refused_connection_is_a_connection_error_without_the_key(api):
    from providers.simulator import Simulator

    unreachable = Simulator()
    unreachable.base_url = "http://127.0.0.1:9"
    with pytest.raises(UpstreamConnectionError) as caught:
        await gather(make_client(unreachable, api).stream(_request(api)))
    assert API_KEY not in str(caught.value)


@pytest.mark.parametrize("api", APIS)
async def test_no_first_token_in_time_is_a_timeout(sim, api):
    timeouts = Timeouts(connect=2, first_token=0.3, between_tokens=5, total=10)
    client = make_client(sim, api, fault="silence-after=0", timeouts=timeouts)
    with pytest.raises(UpstreamTimeoutError, match="did not start answering within"):
        await gather(client.stream(_request(api)))


async def test_the_total_budget_ends_a_reply_that_keeps_going(sim):
    timeouts = Timeouts(connect=2, first_token=2, between_tokens=2, total=0.5)
    client = make_client(sim, "minimax", pace=20, timeouts=timeouts)
    with pytest.raises(UpstreamTimeoutError, match=r"longer than the 0.5 s allowed in total"):
        await gather(client.stream(_request("minimax")))


@pytest.mark.parametrize("api", APIS)
async def test_an_upstream_that_never_answers_times_out_on_the_first_token_budget(sim, api):
    """The wait for the response head is the first-token budget, not max(first, idle)."""
    timeouts = Timeouts(connect=2, first_token=0.4, between_tokens=30, total=60)
    client = make_client(sim, api, fault="no-headers", timeouts=timeouts)
    started = asyncio.get_running_loop().time()
    with pytest.raises(UpstreamTimeoutError, match=r"did not start answering within 0.4 s"):
        await gather(client.stream(_request(api)))
    assert asyncio.get_running_loop().time() - started < 2


async def test_silence_mid_reply_names_the_idle_budget(sim):
    timeouts = Timeouts(connect=2, first_token=5, between_tokens=0.3, total=60)
    client = make_client(sim, "minimax", fault="silence-after=8", timeouts=timeouts)
    with pytest.raises(UpstreamTimeoutError, match=r"went silent mid-reply \(nothing for 0.3 s\)"):
        await gather(client.stream(_request("minimax")))


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("status", [400, 401, 429, 500])
async def test_a_key_echoed_in_an_upstream_error_never_reaches_the_message(sim, api, status):
    client = make_client(sim, api, fault=f"status={status},echo-key")
    with pytest.raises(ProviderError) as caught:
        await gather(client.stream(_request(api)))
    text = str(caught.value)
    assert API_KEY not in text and "sk-test" not in text
    assert API_KEY in sim.requests[-1].raw  # the upstream really did echo it
    assert len(text) < 400


def test_upstream_text_is_cut_to_two_sentences_and_loses_credentials():
    from providers.clients.errors import upstream_said

    said = upstream_said(
        "Bad key Bearer abcdefgh12345678. Token: zz-9f8e7d6c5b4a. Third sentence. Fourth."
    )
    assert said == "Bad key Bearer [redacted]. Token: [redacted]."
    assert len(upstream_said("x" * 5000)) == 240
    assert upstream_said("use sk-abcdefghijkl0123 here") == "use [redacted] here"
