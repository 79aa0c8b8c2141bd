"""After the first reply, the conversation's own model suggests a short title in the
background; the first line stays when it cannot, and a title the owner chose stays."""

from __future__ import annotations

import json
import re

import pytest
from channels.db import database_sync_to_async

from chat import actions
from chat.actions.titles import TITLE_PROMPT, clean_title
from chat.models import Conversation
from tests.streams import is_final, receive_until

REPLY_ID = re.compile(r'id="m-(\d+)" class="message assistant status-streaming"')

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def titles_on(settings):
    settings.AUTO_TITLE = True
    return settings


async def _first_exchange(connect, owner, conversation, text):
    socket, _ = await connect(owner, conversation.pk)
    await socket.send_to(text_data=json.dumps({"action": "send", "message": text}))
    frame = await receive_until(socket, lambda f: REPLY_ID.search(f) is not None)
    await receive_until(socket, is_final(int(REPLY_ID.search(frame).group(1))), within=20)
    return socket


@database_sync_to_async
def _title(conversation):
    return Conversation.objects.get(pk=conversation.pk).title


async def test_the_model_titles_the_conversation_after_its_first_reply(
    connect, owner, conversation, simulator, titles_on
):
    text = "Could you plan a three day trip to Kyoto in spring for two?"
    socket = await _first_exchange(connect, owner, conversation, text)
    frame = await receive_until(
        socket,
        lambda f: '<h1 id="chat-title" hx-swap-oob="true">Could you plan a three day</h1>' in f,
    )
    assert 'id="conversation-link-' in frame  # the sidebar too
    assert await _title(conversation) == "Could you plan a three day"
    asked = simulator.requests[-1].body["messages"][-1]["content"]
    assert asked.startswith(TITLE_PROMPT.split("{", 1)[0]) and text in asked


async def test_a_failed_title_request_keeps_the_first_line(
    connect, owner, conversation, simulator, titles_on
):
    simulator.queue_fault("pace=400")  # the reply itself
    simulator.queue_fault("status=500")  # the title request
    text = "Tell me about the Kestrel's engines"
    await _first_exchange(connect, owner, conversation, text)
    await actions.wait_for_running_replies()
    assert await _title(conversation) == text


async def test_a_title_the_owner_chose_is_never_replaced(
    connect, owner, conversation, simulator, titles_on
):
    await database_sync_to_async(actions.rename_conversation)(
        user=owner, conversation_id=conversation.pk, title="My own title"
    )
    await _first_exchange(connect, owner, conversation, "Something else entirely, please")
    await actions.wait_for_running_replies()
    assert await _title(conversation) == "My own title"


async def test_no_title_is_asked_after_later_replies(
    connect, owner, conversation, simulator, titles_on
):
    socket = await _first_exchange(connect, owner, conversation, "First question here")
    await actions.wait_for_running_replies()
    asked = len(simulator.requests)
    await socket.send_to(text_data=json.dumps({"action": "send", "message": "Second one"}))
    frame = await receive_until(socket, lambda f: REPLY_ID.search(f) is not None)
    await receive_until(socket, is_final(int(REPLY_ID.search(frame).group(1))))
    await actions.wait_for_running_replies()
    assert len(simulator.requests) == asked + 1


@pytest.mark.parametrize(
    ("answer", "title"),
    [
        ('"Kyoto in Spring"', "Kyoto in Spring"),
        ("Title: Engine room tour.", "Engine room tour"),
        ("《京都春季三日游》\n\n说明：……", "京都春季三日游"),
        ("**Star charts**", "Star charts"),
        ("", ""),
        ("   \n  ", ""),
        ("word " * 60, ""),
    ],
)
def test_the_models_answer_is_cleaned_into_a_title(answer, title):
    assert clean_title(answer) == title
