"""Issue 3 through the chat socket: every API streams, history goes back as each API
expects, limits are refused before sending, and long histories are trimmed visibly."""

from __future__ import annotations

import json
import re

import pytest
from channels.db import database_sync_to_async

from chat import actions
from chat.models import Message
from chat.tree import append
from providers.models import CatalogModel
from tests.streams import is_final, receive_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

REPLY_ID = re.compile(r'id="m-(\d+)" class="message assistant status-streaming"')

MODELS = [
    "demo:MiniMax-M2.7",
    "demo-anthropic:MiniMax-M2.7",
    "demo-cloudflare:minimax/m2.7",
    "demo-dashscope:MiniMax-M2.5",
    "demo-cloudsway:MiniMax-M2.7",
]


@database_sync_to_async
def _conversation(owner, persona, model):
    return actions.create_conversation(user=owner, persona_id=persona.pk, model_key=model)


@database_sync_to_async
def _message(pk):
    return Message.objects.get(pk=pk)


async def _turn(socket, text):
    await socket.send_to(text_data=json.dumps({"action": "send", "message": text}))
    frame = await receive_until(socket, lambda f: REPLY_ID.search(f) is not None)
    reply_id = int(REPLY_ID.search(frame).group(1))
    final = await receive_until(socket, is_final(reply_id), within=20)
    return await _message(reply_id), final


@pytest.mark.parametrize("model", MODELS)
async def test_two_turns_stream_with_reasoning_and_send_back_history(
    connect, owner, persona, simulator, model
):
    conversation = await _conversation(owner, persona, model)
    socket, _ = await connect(owner, conversation.pk)
    first, final = await _turn(socket, "Where are we?")
    assert first.status == "complete" and first.reasoning and "Where are we?" in first.content
    assert 'class="thinking"' in final and "<summary>Thinking</summary>" in final
    assert first.input_tokens and first.output_tokens
    second, _ = await _turn(socket, "And now?")
    assert second.status == "complete"
    body = simulator.requests[-1].body
    if model.startswith("demo-anthropic"):
        sent = body["messages"]
        assistant = next(
            m for m in sent if m["role"] == "assistant" and isinstance(m["content"], list)
        )
        assert assistant["content"][0]["type"] == "thinking"
        assert assistant["content"][0]["thinking"] == first.reasoning
        assert "signed thinking block(s) verified" in second.content
    elif model.startswith("demo-dashscope"):
        sent = body["input"]["messages"]
        assert {"role": "assistant", "content": first.content} in sent
        assert body["parameters"]["max_tokens"] > 256
    else:
        sent = body["messages"] if "messages" in body else body["input"]["messages"]
        assistant = [m for m in sent if m["role"] == "assistant"][-1]
        assert assistant == first.provider_data["assistant_message"]


async def test_m2_her_role_play_falls_back_and_tells_the_user(connect, owner, persona, simulator):
    conversation = await _conversation(owner, persona, "demo:M2-her")
    simulator.queue_fault("her-500")
    socket, _ = await connect(owner, conversation.pk)
    reply, final = await _turn(socket, "Captain?")
    assert reply.status == "complete"
    assert "folded into the system prompt" in reply.notices
    assert "folded into the system prompt" in final


async def test_a_long_history_is_trimmed_for_m2_her_and_the_page_says_so(connect, owner, persona):
    conversation = await _conversation(owner, persona, "demo:M2-her")

    @database_sync_to_async
    def fill():
        for i, role in enumerate(["user", "assistant"] * 12):
            append(conversation, role=role, content=f"Turn {i}: " + "words " * 120)

    await fill()
    socket, _ = await connect(owner, conversation.pk)
    reply, final = await _turn(socket, "What now?")
    assert reply.status == "complete"
    assert "left out to fit M2-her's 2,048-token context window" in reply.notices
    assert "left out to fit M2-her&#x27;s 2,048-token context window" in final


async def test_a_message_too_long_for_the_window_is_refused_and_kept_in_the_composer(
    connect, owner, persona
):
    conversation = await _conversation(owner, persona, "demo:M2-her")
    socket, _ = await connect(owner, conversation.pk)
    await socket.send_to(text_data=json.dumps({"action": "send", "message": "word " * 3000}))
    frame = await receive_until(socket, lambda f: "composer-error" in f and "context" in f)
    assert "2,048 tokens of context" in frame
    assert not await database_sync_to_async(Message.objects.filter(role="user").exists)()


async def test_prompt_token_counts_calibrate_the_estimate(connect, owner, persona):
    from providers.catalog import MINIMAX_OPENAI, default_spec

    spec = default_spec(MINIMAX_OPENAI, "MiniMax-M2.7")
    await database_sync_to_async(CatalogModel.objects.get_or_create)(
        kind=MINIMAX_OPENAI,
        name="MiniMax-M2.7",
        defaults=CatalogModel.fields_from_spec(MINIMAX_OPENAI, spec),
    )
    conversation = await _conversation(owner, persona, "demo:MiniMax-M2.7")
    socket, _ = await connect(owner, conversation.pk)
    await _turn(socket, "Calibrate me")
    ratio = await database_sync_to_async(
        lambda: (
            CatalogModel.objects.get(kind="minimax_openai", name="MiniMax-M2.7").prompt_token_ratio
        )
    )()
    assert ratio != 1.0


@pytest.mark.parametrize("model", MODELS)
async def test_max_output_tokens_cuts_the_reply_and_the_page_says_so(
    connect, owner, persona, simulator, model
):
    conversation = await _conversation(owner, persona, model)
    await database_sync_to_async(actions.update_conversation_settings)(
        user=owner,
        conversation_id=conversation.pk,
        model_key=model,
        temperature=None,
        top_p=None,
        max_output_tokens=30,
    )
    socket, _ = await connect(owner, conversation.pk)
    reply, final = await _turn(socket, "Tell me everything")
    assert reply.finish_reason in ("length", "max_tokens")
    assert reply.status == "complete"
    assert "stopped at the output limit" in final
    from providers.simulator.replies import max_output_tokens

    assert max_output_tokens(simulator.requests[-1].body) == 30
