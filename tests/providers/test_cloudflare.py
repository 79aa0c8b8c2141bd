"""Cloudflare Workers AI: both endpoints, the v4 envelope, gateway URLs, usage."""

from __future__ import annotations

import pytest

from providers.clients.base import gather
from providers.clients.cloudflare import CloudflareClient, envelope_error
from providers.clients.errors import (
    AuthenticationError,
    ContentFilteredError,
    InsufficientQuotaError,
    InvalidRequestError,
    ModelNotFoundError,
    OverloadedError,
    UpstreamTimeoutError,
)
from providers.clients.types import ChatMessage, ChatRequest
from tests.providers.conftest import make_client

REQUEST = ChatRequest(
    model="minimax/m2.7", messages=(ChatMessage("user", "Hello there"),), max_output_tokens=500
)


async def test_run_wraps_the_input_and_uses_the_account_path(sim):
    await gather(make_client(sim, "cloudflare").stream(REQUEST))
    sent = sim.requests[-1]
    assert sent.path == "/cloudflare/client/v4/accounts/acct-1/ai/run"
    assert sent.body["model"] == "minimax/m2.7"
    assert sent.body["input"]["max_tokens"] == 500 and sent.body["input"]["stream"] is True


async def test_the_openai_endpoint_takes_the_bare_body(sim):
    await gather(make_client(sim, "cloudflare-openai").stream(REQUEST))
    sent = sim.requests[-1]
    assert sent.path == "/cloudflare/client/v4/accounts/acct-1/ai/v1/chat/completions"
    assert sent.body["model"] == "minimax/m2.7" and "input" not in sent.body


def test_an_ai_gateway_id_switches_to_the_gateway_url():
    client = CloudflareClient(api_token="t", account_id="acct", gateway_id="gw")
    assert client.endpoint.base_url == "https://gateway.ai.cloudflare.com/v1/acct/gw/workers-ai"
    assert client.path(REQUEST, stream=True) == "/minimax/m2.7"
    openai = CloudflareClient(api_token="t", account_id="acct", gateway_id="gw", style="openai")
    assert openai.path(REQUEST, stream=True) == "/v1/chat/completions"


async def test_the_non_streaming_envelope_is_unwrapped(sim):
    result = await make_client(sim, "cloudflare").complete(REQUEST)
    assert "Received:" in result.text and result.reasoning and result.finish.reason == "stop"
    assert '"success": true' in sim.requests[-1].raw


@pytest.mark.parametrize("quirk", ["padding", "incremental-usage"])
async def test_workers_ai_stream_quirks_are_handled(sim, quirk):
    plain = await gather(make_client(sim, "cloudflare").stream(REQUEST))
    result = await gather(make_client(sim, "cloudflare", quirks=quirk).stream(REQUEST))
    assert (result.text, result.reasoning) == (plain.text, plain.reasoning)
    # Incremental usage is never added up: the cumulative native frame wins.
    assert result.usage == plain.usage
    raw = sim.requests[-1].raw
    assert ('"p": "' in raw) if quirk == "padding" else ('{"response": ""' in raw)


@pytest.mark.parametrize(
    ("code", "error_type"),
    [
        (10000, AuthenticationError),
        (5007, ModelNotFoundError),
        (5004, InvalidRequestError),
        (3006, InvalidRequestError),
        (3007, UpstreamTimeoutError),
        (3008, UpstreamTimeoutError),
        (3036, InsufficientQuotaError),
        (3040, OverloadedError),
        (3030, ContentFilteredError),
    ],
)
def test_envelope_error_codes_map_to_typed_errors(code, error_type):
    body = {"success": False, "errors": [{"code": code, "message": "m"}], "result": None}
    assert type(envelope_error(400, body, {})) is error_type


async def test_success_false_with_http_200_is_an_error(sim):
    with pytest.raises(ContentFilteredError):
        await gather(make_client(sim, "cloudflare", fault="cf-code=3030").stream(REQUEST))
    assert sim.requests[-1].raw.startswith('{"result": null, "success": false')


async def test_success_false_on_the_non_streaming_call_is_an_error(sim):
    with pytest.raises(AuthenticationError):
        await make_client(sim, "cloudflare", fault="cf-code=10000").complete(REQUEST)
