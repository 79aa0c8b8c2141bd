"""The tab that sends sees its message and the reply's first words while the send is
being stored; the stored exchange then takes their place, and only that tab sees them."""

from __future__ import annotations

import json
import time

import pytest
from channels.db import database_sync_to_async

from chat import actions
from chat.consumers import ConversationConsumer
from chat.models import Message
from tests.streams import DELTA, Transcript, is_final, receive_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def slow_store(monkeypatch):  # type: ignore[no-untyped-def]
    """Storing a send takes 0.4 s, as it does behind many simultaneous sends."""

    def send_message(**arguments):  # type: ignore[no-untyped-def]
        time.sleep(0.4)
        return actions.send_message(**arguments)

    monkeypatch.setitem(ConversationConsumer.STARTS, "send", send_message)


def _send(text: str, client_id: str) -> str:
    return json.dumps({"action": "send", "message": text, "client_id": client_id})


def _provisional_text(transcript: Transcript, client_id: str) -> str:
    return transcript.regions.get(f"p-{client_id}-r-text", "")


async def test_the_sending_tab_sees_its_message_and_first_words_before_the_send_is_stored(
    connect, owner, conversation, simulator, fast_frames, slow_store
):
    sender, _ = await connect(owner, conversation.pk)
    other_tab, _ = await connect(owner, conversation.pk)
    transcript = Transcript()
    await sender.send_to(text_data=_send("Where are we <headed>?", "prov-1"))

    shell = await receive_until(sender, lambda f: 'id="p-prov-1"' in f, transcript)
    assert 'class="provisional"' in shell
    assert "Where are we &lt;headed&gt;?" in shell  # the message as typed, escaped
    assert 'id="p-prov-1-r-text"' in shell and "Mara" in shell  # the persona answers
    # The reply's first words, in the provisional reply, before the ack.
    ack = await receive_until(
        sender,
        lambda f: 'data-ack="prov-1"' in f or "p-prov-1-r-text" in f and DELTA.search(f),
        transcript,
    )
    assert 'data-ack="prov-1"' not in ack
    early_words = _provisional_text(transcript, "prov-1")
    assert early_words

    ack = await receive_until(sender, lambda f: 'data-ack="prov-1"' in f, transcript)
    reply = await database_sync_to_async(
        Message.objects.filter(conversation=conversation, role="assistant").last
    )()
    assert f'data-reply-id="{reply.pk}"' in ack
    await receive_until(sender, is_final(reply.pk), transcript, within=20)
    await database_sync_to_async(reply.refresh_from_db)()
    # What the tab showed early is how the stored reply begins: the same request.
    assert reply.status == "complete"
    assert reply.content.startswith(_provisional_text(transcript, "prov-1"))
    assert transcript.text(reply.pk) == reply.content
    # Kept: the page swaps it for the stored pair once that has caught up.
    assert not any('hx-swap-oob="delete"' in frame for frame in transcript.frames)
    # It stopped once the stored reply's own text got here (a frame already on its
    # way may follow).
    first_stored = next(
        i for i, frame in enumerate(transcript.frames) if f"#m-{reply.pk}-" in frame
    )
    later = [frame for frame in transcript.frames[first_stored:] if "#p-prov-1-r-" in frame]
    assert len(later) <= 1

    # The other tab saw only the stored exchange.
    seen = Transcript()
    await receive_until(other_tab, is_final(reply.pk), seen, within=20)
    assert not any("p-prov-1" in frame for frame in seen.frames)
    assert seen.text(reply.pk) == reply.content


async def test_a_send_refused_when_stored_takes_its_provisional_exchange_back(
    connect, owner, conversation, simulator, fast_frames
):
    from django.contrib.auth.models import Group

    from providers.registry import available_models
    from tests.access import restrict_model

    def restrict() -> None:
        restrict_model("MiniMax-M2.7", Group.objects.create(name="crew"))  # not the owner's
        available_models()

    socket, _ = await connect(owner, conversation.pk)
    await database_sync_to_async(restrict)()
    transcript = Transcript()
    await socket.send_to(text_data=_send("Still there?", "prov-2"))
    await receive_until(socket, lambda f: 'id="p-prov-2"' in f, transcript)
    refusal = await receive_until(socket, lambda f: 'data-refused="prov-2"' in f, transcript)
    assert "no longer available" in refusal
    await receive_until(
        socket, lambda f: f == '<div id="p-prov-2" hx-swap-oob="delete"></div>', transcript
    )
    stored = await database_sync_to_async(Message.objects.filter(conversation=conversation).count)()
    assert stored == 1  # the persona's greeting only


async def test_a_resent_message_takes_its_provisional_exchange_back(
    connect, owner, conversation, simulator, fast_frames
):
    """The socket dropped before the ack and the page sent again: the message is stored
    once, and the second provisional exchange goes away."""
    socket, _ = await connect(owner, conversation.pk)
    await socket.send_to(text_data=_send("Where are we headed?", "prov-3"))
    await receive_until(socket, lambda f: 'data-ack="prov-3"' in f)
    reply = await database_sync_to_async(
        Message.objects.filter(conversation=conversation, role="assistant").last
    )()
    await receive_until(socket, is_final(reply.pk), within=20)
    # The reply's end leaves the next turn (what the resend starts early from) just
    # after its final frame goes out.
    await actions.wait_for_running_replies()

    transcript = Transcript()
    await socket.send_to(text_data=_send("Where are we headed?", "prov-3"))
    ack = await receive_until(socket, lambda f: 'data-ack="prov-3"' in f, transcript)
    assert f'data-reply-id="{reply.pk}"' in ack
    # Shown, then taken back before the acknowledgement.
    assert 'id="p-prov-3"' in transcript.frames[0]
    assert transcript.frames[-2] == '<div id="p-prov-3" hx-swap-oob="delete"></div>'
    users = await database_sync_to_async(
        Message.objects.filter(conversation=conversation, role="user").count
    )()
    assert users == 1


async def test_an_early_request_the_stored_send_does_not_adopt_is_taken_back(
    connect, owner, conversation, simulator, fast_frames, make_next_turn_stale
):
    """Another process changed the conversation: the reply asks again, and the early
    words shown for the stale request go away."""
    socket, _ = await connect(owner, conversation.pk)
    await make_next_turn_stale(conversation)
    transcript = Transcript()
    await socket.send_to(text_data=_send("Where are we headed?", "prov-4"))
    await receive_until(socket, lambda f: 'data-ack="prov-4"' in f, transcript)
    assert '<div id="p-prov-4" hx-swap-oob="delete"></div>' in transcript.frames
    reply = await database_sync_to_async(
        Message.objects.filter(conversation=conversation, role="assistant").last
    )()
    await receive_until(socket, is_final(reply.pk), transcript, within=20)
    await database_sync_to_async(reply.refresh_from_db)()
    assert reply.status == "complete" and transcript.text(reply.pk) == reply.content


async def test_nothing_is_shown_early_without_an_early_request(
    connect, owner, conversation, simulator, fast_frames, settings
):
    settings.REPLY_EARLY_START = False
    socket, _ = await connect(owner, conversation.pk)
    transcript = Transcript()
    await socket.send_to(text_data=_send("Where are we headed?", "prov-5"))
    await receive_until(socket, lambda f: 'data-ack="prov-5"' in f, transcript)
    reply = await database_sync_to_async(
        Message.objects.filter(conversation=conversation, role="assistant").last
    )()
    await receive_until(socket, is_final(reply.pk), transcript, within=20)
    assert not any("p-prov-5" in frame for frame in transcript.frames)


async def test_the_store_waits_for_the_first_words_but_never_longer_than_the_head_start():
    import asyncio
    from types import SimpleNamespace

    from chat.provisional import ProvisionalReply
    from providers.clients.types import TextDelta

    frames: list[str] = []

    async def send(html: str) -> None:
        frames.append(html)

    early = SimpleNamespace(watcher=None, text="Hello?", speaker="Mara")
    shown = ProvisionalReply(send, client_id="c-1", early=early)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    began = loop.time()
    await shown.first_words(within=0.2)  # the upstream says nothing yet
    assert 0.15 < loop.time() - began < 1.0
    assert len(frames) == 1 and 'id="p-c-1"' in frames[0]

    early.watcher(TextDelta("Hi"))
    began = loop.time()
    await shown.first_words(within=5)
    assert loop.time() - began < 1.0
    assert frames[-1].endswith('data-offset="0" data-end="2">Hi</div>')
    await shown.take_back()
    assert early.watcher is None
    assert frames[-1] == '<div id="p-c-1" hx-swap-oob="delete"></div>'


async def test_while_the_database_thread_is_busy_the_sender_sees_the_reply_begin(
    connect, owner, conversation, simulator, fast_frames
):
    """Stores take turns with reply ends on the database thread (``database_turn``);
    waiting for one, the sending tab already shows its message and first words."""
    import asyncio

    socket, _ = await connect(owner, conversation.pk)
    transcript = Transcript()
    async with actions.database_turn():  # another send or a reply's end, being saved
        await socket.send_to(text_data=_send("Where are we headed?", "prov-6"))
        await receive_until(
            socket, lambda f: "p-prov-6-r-" in f and DELTA.search(f) is not None, transcript
        )
        await asyncio.sleep(0.3)
        while not await socket.receive_nothing(timeout=0.05):
            transcript.apply(await socket.receive_from())
        assert not any('data-ack="prov-6"' in frame for frame in transcript.frames)
    await receive_until(socket, lambda f: 'data-ack="prov-6"' in f, transcript)


async def test_a_save_waiting_out_a_database_outage_does_not_hold_the_turn():
    import asyncio

    from django.db import OperationalError

    from chat.actions.common import database_turn, retry_db_in_turn

    attempts = []
    loop = asyncio.get_running_loop()
    failed = asyncio.Event()

    def save() -> str:
        attempts.append(len(attempts))
        if len(attempts) == 1:
            loop.call_soon_threadsafe(failed.set)
            raise OperationalError("the server closed the connection")
        return "saved"

    saving = asyncio.create_task(retry_db_in_turn(save, 5.0))
    await failed.wait()
    # Between its attempts (0.1 s apart) the turn is free for a send.
    async with database_turn():
        assert len(attempts) == 1
    assert await saving == "saved" and len(attempts) == 2


async def test_a_send_shows_its_first_words_while_the_database_thread_is_occupied(
    connect, owner, conversation, simulator, fast_frames
):
    """Nothing between a socket's message and its handler waits for the database
    thread (Channels hops there before every handler): a send shows its message and
    first words while that thread is busy with other work, and is stored after it."""
    import asyncio
    import threading

    socket, _ = await connect(owner, conversation.pk)
    await socket.receive_from()  # the catch-up: the conversation's last reply
    assert await socket.receive_nothing(timeout=0.3)  # the socket's opening is done
    transcript = Transcript()
    release = threading.Event()
    busy = asyncio.ensure_future(database_sync_to_async(release.wait)(10))
    try:
        await asyncio.sleep(0.05)  # the thread is in it
        await socket.send_to(text_data=_send("Where are we headed?", "prov-7"))
        await receive_until(
            socket,
            lambda f: "p-prov-7-r-" in f and DELTA.search(f) is not None,
            transcript,
            within=3,
        )
        assert not busy.done()
        assert not any('data-ack="prov-7"' in frame for frame in transcript.frames)
    finally:
        release.set()
        await busy
    await receive_until(socket, lambda f: 'data-ack="prov-7"' in f, transcript)
