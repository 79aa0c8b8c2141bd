"""A conversation is a tree: regenerate, retry and edit add versions; switching shows
another branch; every API gets the history of the branch it continues."""

from __future__ import annotations

import importlib
import json
import re

import pytest
from channels.db import database_sync_to_async

from chat import actions
from chat.models import Conversation, Message
from chat.tree import Shape, current_path
from tests.streams import is_final, receive_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

REPLY_ID = re.compile(r'id="m-(\d+)" class="message assistant status-streaming"')

MODELS = [
    "demo:MiniMax-M2.7",
    "demo:M2-her",
    "demo-anthropic:MiniMax-M2.7",
    "demo-cloudflare:minimax/m2.7",
    "demo-dashscope:MiniMax-M2.5",
    "demo-cloudsway:MiniMax-M2.7",
]


@database_sync_to_async
def _conversation(owner, persona, model):
    return actions.create_conversation(user=owner, persona_id=persona.pk, model_key=model)


@database_sync_to_async
def _get(pk):
    return Message.objects.get(pk=pk)


async def _act(socket, **payload):
    """Send a socket action; return the reply it started, as stored once final."""
    await socket.send_to(text_data=json.dumps(payload))
    frame = await receive_until(
        socket,
        lambda f: REPLY_ID.search(f) is not None or ('role="alert"' in f and '"></div>' not in f),
    )
    found = REPLY_ID.search(frame)
    assert found, frame
    reply_id = int(found.group(1))
    final = await receive_until(socket, is_final(reply_id), within=20)
    return await _get(reply_id), final


def _sent_texts(body) -> list[str]:
    """The text of every message an upstream request carried, whatever its API."""
    messages = body.get("messages") or body.get("input", {}).get("messages") or []
    texts = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(
                block.get("text", "") for block in content if isinstance(block, dict)
            )
        texts.append(content or "")
    return texts


@pytest.mark.parametrize("model", MODELS)
async def test_regenerate_edit_and_switch_send_each_branch_its_own_history(
    connect, owner, persona, simulator, model
):
    conversation = await _conversation(owner, persona, model)
    socket, _ = await connect(owner, conversation.pk)
    first, _ = await _act(socket, action="send", message="Where are we?")
    second, _ = await _act(socket, action="send", message="And now?")
    straight = simulator.requests[-1].body

    again, final = await _act(socket, action="regenerate", message_id=second.pk)
    assert again.parent_id == second.parent_id and again.status == "complete"
    assert "2 / 2" in final and 'aria-label="Previous version"' in final
    # The same history as the straight conversation, thinking blocks and all.
    assert _sent_texts(simulator.requests[-1].body) == _sent_texts(straight)
    if model.startswith("demo-anthropic"):
        assert "signed thinking block(s) verified" in again.content

    edited, _ = await _act(socket, action="edit", message_id=second.parent_id, message="Instead?")
    sent = _sent_texts(simulator.requests[-1].body)
    assert "Instead?" in sent[-1] and not any("And now?" in text for text in sent)
    assert any("Where are we?" in text for text in sent)

    await socket.send_to(text_data=json.dumps({"action": "switch", "message_id": second.parent_id}))
    await receive_until(socket, lambda f: 'hx-swap-oob="innerHTML"' in f)
    onward, _ = await _act(socket, action="send", message="Go on.")
    sent = _sent_texts(simulator.requests[-1].body)
    assert any("And now?" in text for text in sent) and not any("Instead?" in t for t in sent)
    path = await database_sync_to_async(
        lambda: [m.pk for m in current_path(Conversation.objects.get(pk=conversation.pk))]
    )()
    assert path[-4:] == [second.parent_id, again.pk, onward.parent_id, onward.pk]
    assert first.pk in path and second.pk not in path and edited.pk not in path


async def test_retry_after_a_failure_keeps_the_failed_reply_as_a_version(
    connect, owner, conversation, simulator
):
    socket, _ = await connect(owner, conversation.pk)
    simulator.queue_fault("status=401")
    failed, final = await _act(socket, action="send", message="Hello?")
    assert failed.status == "failed" and ">Retry</button>" in final
    retried, final = await _act(socket, action="regenerate", message_id=failed.pk)
    assert retried.status == "complete" and "2 / 2" in final
    assert await database_sync_to_async(Message.objects.filter(pk=failed.pk).exists)()


async def test_the_page_shows_the_current_branch_with_its_versions(
    connect, owner, conversation, simulator, client_for
):
    socket, _ = await connect(owner, conversation.pk)
    reply, _ = await _act(socket, action="send", message="One")
    again, _ = await _act(socket, action="regenerate", message_id=reply.pk)
    html = await database_sync_to_async(
        lambda: client_for(owner).get(f"/c/{conversation.pk}/").content.decode()
    )()
    assert f'id="m-{again.pk}"' in html and f'id="m-{reply.pk}"' not in html
    assert "2 / 2" in html and ">Edit</button>" in html


@pytest.mark.parametrize(
    "payload",
    [
        {"action": "regenerate"},
        {"action": "regenerate", "message_id": "x"},
        {"action": "switch", "message_id": True},
        {"action": "edit", "message": "Hi"},
    ],
)
async def test_malformed_branch_actions_are_refused_and_store_nothing(
    connect, owner, conversation, payload
):
    socket, _ = await connect(owner, conversation.pk)
    before = await database_sync_to_async(conversation.messages.count)()
    await socket.send_to(text_data=json.dumps(payload))
    frame = await receive_until(socket, lambda f: "could not be found" in f)
    assert 'role="alert"' in frame
    assert await database_sync_to_async(conversation.messages.count)() == before


async def test_another_users_messages_cannot_be_regenerated_edited_or_switched_to(
    connect, owner, teammate, persona, conversation
):
    theirs = await database_sync_to_async(actions.create_conversation)(
        user=teammate, persona_id=persona.pk, model_key="demo:MiniMax-M2.7"
    )
    greeting = await database_sync_to_async(theirs.messages.first)()
    socket, _ = await connect(owner, conversation.pk)
    for payload in (
        {"action": "regenerate", "message_id": greeting.pk},
        {"action": "edit", "message_id": greeting.pk, "message": "Mine now"},
        {"action": "switch", "message_id": greeting.pk},
    ):
        await socket.send_to(text_data=json.dumps(payload))
        await receive_until(socket, lambda f: "could not be found" in f)
    assert await database_sync_to_async(theirs.messages.count)() == 1
    assert await database_sync_to_async(conversation.messages.count)() == 1


async def test_the_greeting_cannot_be_regenerated_and_a_running_reply_blocks_switching(
    connect, owner, conversation, settings
):
    settings.DEMO_TOKENS_PER_SECOND = 20
    greeting = await database_sync_to_async(conversation.messages.first)()
    socket, _ = await connect(owner, conversation.pk)
    await socket.send_to(text_data=json.dumps({"action": "regenerate", "message_id": greeting.pk}))
    await receive_until(socket, lambda f: "greeting cannot be regenerated" in f)
    await socket.send_to(text_data=json.dumps({"action": "send", "message": "Long one"}))
    frame = await receive_until(socket, lambda f: REPLY_ID.search(f) is not None)
    reply_id = int(REPLY_ID.search(frame).group(1))
    await socket.send_to(text_data=json.dumps({"action": "switch", "message_id": greeting.pk}))
    await receive_until(socket, lambda f: "Wait for the reply to finish" in f)
    await socket.send_to(text_data=json.dumps({"action": "regenerate", "message_id": reply_id}))
    await receive_until(socket, lambda f: "still being written" in f)
    await socket.send_to(text_data=json.dumps({"action": "stop"}))
    await receive_until(socket, is_final(reply_id))


def test_existing_conversations_migrate_as_one_straight_path(owner):
    from django.apps import apps

    migration = importlib.import_module("chat.migrations.0005_message_tree")
    conversation = Conversation.objects.create(owner=owner, model="demo:MiniMax-M2.7")
    rows = [
        Message.objects.create(conversation=conversation, role=role, content=str(i))
        for i, role in enumerate(["assistant", "user", "assistant", "user", "assistant"])
    ]
    migration.chain_existing_messages(apps, None)
    conversation.refresh_from_db()
    assert conversation.current_leaf_id == rows[-1].pk
    assert [m.pk for m in current_path(conversation)] == [m.pk for m in rows]
    shape = Shape.of(conversation)
    assert all(shape.versions(m.pk).count == 1 for m in rows)


async def test_another_tab_follows_a_version_switch_live(connect, owner, conversation, simulator):
    socket, _ = await connect(owner, conversation.pk)
    other, _ = await connect(owner, conversation.pk)
    first, _ = await _act(socket, action="send", message="Which way?")
    again, _ = await _act(socket, action="regenerate", message_id=first.pk)
    await socket.send_to(text_data=json.dumps({"action": "switch", "message_id": first.pk}))
    frame = await receive_until(
        other, lambda f: 'hx-swap-oob="innerHTML"' in f and f'id="m-{first.pk}"' in f
    )
    assert "1 / 2" in frame and f'id="m-{again.pk}"' not in frame
