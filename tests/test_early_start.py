"""A send starts its reply's upstream request before the message is stored, and the
reply adopts it only when the stored send asks for exactly that request."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from prometheus_client import REGISTRY

from chat.actions import conversations
from chat.models import Message, User
from providers.clients import budget
from providers.clients.budget import message_tokens
from tests.streams import Transcript, is_final, receive_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _early(outcome: str) -> float:
    return REGISTRY.get_sample_value("parley_early_starts_total", {"outcome": outcome}) or 0.0


def _replies_asked(simulator, since: int = 0) -> list:  # type: ignore[no-untyped-def]
    """Reply requests the simulator received (titles ask with a prompt of their own)."""
    return [r for r in simulator.requests[since:] if "Where are we" in json.dumps(r.body)]


async def _exchange(socket, text: str, client_id: str) -> Message:
    await socket.send_to(
        text_data=json.dumps({"action": "send", "message": text, "client_id": client_id})
    )
    await receive_until(socket, lambda f: f'data-ack="{client_id}"' in f)
    reply = await database_sync_to_async(
        Message.objects.filter(role="assistant", status="streaming").last
    )()
    await receive_until(socket, is_final(reply.pk), Transcript(), within=20)
    await database_sync_to_async(reply.refresh_from_db)()
    return reply


async def test_a_send_starts_upstream_early_and_the_reply_adopts_it_turn_after_turn(
    connect, owner, conversation, simulator, fast_frames
):
    adopted, dropped = _early("adopted"), _early("dropped")
    before = len(simulator.requests)
    socket, _ = await connect(owner, conversation.pk)  # the socket learns the next turn
    first = await _exchange(socket, "Where are we headed?", "early-1")
    # The first reply leaves the next turn: the second send starts early too.
    second = await _exchange(socket, "Where are we now?", "early-2")
    assert (first.status, second.status) == ("complete", "complete")
    assert _early("adopted") == adopted + 2 and _early("dropped") == dropped
    # One request per reply, and the second carried the whole conversation.
    asked = _replies_asked(simulator, before)
    assert len(asked) == 2
    body = asked[-1].body
    contents = [m["content"] for m in body["messages"] if m["role"] in ("user", "assistant")]
    assert contents[-3:] == ["Where are we headed?", first.content, "Where are we now?"]


async def test_a_send_estimates_only_its_own_message_not_the_whole_history(
    connect, owner, conversation, simulator, fast_frames, monkeypatch
):
    socket, _ = await connect(owner, conversation.pk)
    await _exchange(socket, "Where are we headed? “Somewhere”, she said.", "early-4")
    await _exchange(socket, "Where are we now?", "early-5")
    remembered = conversations.next_turn(conversation.pk)
    assert remembered is not None
    # The persona's greeting, then the two exchanges.
    roles = [message.role for message in remembered.messages]
    assert roles == ["assistant", "user", "assistant", "user", "assistant"]
    # Kept with the turn, one per message, as estimating them again would give.
    assert remembered.message_costs == tuple(map(message_tokens, remembered.messages))
    estimated: list[str] = []
    real = budget.estimate_tokens
    monkeypatch.setattr(
        budget, "estimate_tokens", lambda text: estimated.append(text) or real(text)
    )
    adopted = _early("adopted")
    third = await _exchange(socket, "And next?", "early-6")
    assert third.status == "complete" and _early("adopted") == adopted + 1
    # Started early, then stored: the new message (and the persona, which is short) was
    # estimated, and none of the history, in either.
    assert estimated.count("And next?") == 2
    history = {text for m in remembered.messages for text in (m.content, m.reasoning) if text}
    assert history and not history & set(estimated)


async def test_an_early_request_that_no_longer_matches_the_conversation_is_dropped(
    connect, owner, conversation, simulator, fast_frames, make_next_turn_stale
):
    adopted, dropped = _early("adopted"), _early("dropped")
    before = len(simulator.requests)
    socket, _ = await connect(owner, conversation.pk)
    await make_next_turn_stale(conversation)
    reply = await _exchange(socket, "Where are we headed?", "early-3")
    assert reply.status == "complete" and reply.content
    assert _early("dropped") == dropped + 1 and _early("adopted") == adopted
    # The reply asked again with the conversation as stored.
    asked = _replies_asked(simulator, before)
    assert len(asked) == 2 and asked[-1].body["temperature"] == 0.2


async def test_a_refused_send_drops_its_early_request_and_stores_nothing(
    connect, owner, conversation, simulator
):
    dropped = _early("dropped")
    socket, _ = await connect(owner, conversation.pk)
    # Approval withdrawn without a signal reaching the socket (another process).
    await database_sync_to_async(User.objects.filter(pk=owner.pk).update)(is_approved=False)
    await socket.send_to(
        text_data=json.dumps({"action": "send", "message": "Where are we?", "client_id": "x"})
    )
    output = await socket.receive_output(timeout=5)
    while output["type"] == "websocket.send":  # the catch-up on connect
        output = await socket.receive_output(timeout=5)
    assert output == {"type": "websocket.close", "code": 1008}
    assert _early("dropped") == dropped + 1
    count = await database_sync_to_async(
        Message.objects.filter(conversation=conversation, role="user").count
    )()
    assert count == 0


async def test_nothing_starts_early_when_a_quota_may_apply(
    connect, owner, conversation, simulator, fast_frames
):
    from chat.models import Quota

    await database_sync_to_async(Quota.objects.create)(user=owner, tokens_per_day=1_000_000)
    adopted, dropped = _early("adopted"), _early("dropped")
    socket, _ = await connect(owner, conversation.pk)
    reply = await _exchange(socket, "Where are we headed?", "early-4")
    assert reply.status == "complete"
    assert (_early("adopted"), _early("dropped")) == (adopted, dropped)


async def test_after_a_send_is_refused_for_its_model_the_next_starts_nothing_early(
    connect, owner, conversation, simulator, fast_frames
):
    """An admin took the model away: the refused send's early request is the last one
    made for this conversation, not one per attempt."""
    from django.contrib.auth.models import Group

    from providers.registry import available_models
    from tests.access import restrict_model

    def restrict() -> None:
        restrict_model("MiniMax-M2.7", Group.objects.create(name="crew"))  # not the owner's
        available_models()  # loaded again since, as any request would

    socket, _ = await connect(owner, conversation.pk)
    await _exchange(socket, "Where are we headed?", "early-5")
    await database_sync_to_async(restrict)()
    dropped = _early("dropped")
    before = len(simulator.requests)
    for attempt in ("early-6", "early-7", "early-8"):
        await socket.send_to(
            text_data=json.dumps(
                {"action": "send", "message": "Still there?", "client_id": attempt}
            )
        )
        await receive_until(socket, lambda f, a=attempt: f'data-refused="{a}"' in f)
    # The connection is unchanged, so the first attempt started early; its refusal
    # forgot the next turn, and the others did not.
    assert _early("dropped") - dropped == 1
    assert len(simulator.requests) - before <= 1  # cancelled early enough, none at all
    assert conversations.next_turn(conversation.pk) is None


async def test_nothing_starts_early_once_this_process_forgot_the_model_list(
    connect, owner, conversation, simulator, fast_frames
):
    from chat.actions.early import start_early
    from providers.registry import forget_models

    await connect(owner, conversation.pk)  # the socket learns the next turn
    assert conversations.next_turn(conversation.pk) is not None
    forget_models()  # a connection or catalog row was saved in this process
    assert start_early(conversation_id=conversation.pk, text="Hello") is None
