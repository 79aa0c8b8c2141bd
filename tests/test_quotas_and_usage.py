"""Usage and cost are recorded for every reply; quotas refuse what crosses a limit, with
a sentence naming it and when it resets, and store nothing."""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Group
from django.db import close_old_connections

from chat import actions
from chat.actions.quotas import QuotaExceeded, check_send, limits_for, standing
from chat.models import Conversation, Message, Quota, Usage
from tests.streams import is_final, receive_until

pytestmark = [pytest.mark.integration]

REPLY_ID = re.compile(r'id="m-(\d+)" class="message assistant status-streaming"')


def _chat(user):
    return actions.create_conversation(user=user, persona_id=None, model_key="demo:MiniMax-M2.7")


def _used(user, tokens, when):
    Usage.objects.create(
        user=user,
        connection="demo",
        api="minimax_openai",
        model="MiniMax-M2.7",
        input_tokens=tokens,
        created_at=when,
    )


def _priced_catalog():
    """The seeded catalog row with MiniMax's prices (transactional tests flush it)."""
    from providers.catalog import CATALOG, MINIMAX_OPENAI
    from providers.models import CatalogModel
    from providers.registry import forget_models

    spec = next(spec for spec in CATALOG[MINIMAX_OPENAI] if spec.name == "MiniMax-M2.7")
    fields = CatalogModel.fields_from_spec(MINIMAX_OPENAI, spec)
    fields.update(
        input_price=Decimal("0.3"), cached_input_price=Decimal("0.06"), output_price=Decimal("1.2")
    )
    CatalogModel.objects.update_or_create(kind=MINIMAX_OPENAI, name=spec.name, defaults=fields)
    forget_models()


@pytest.mark.django_db(transaction=True)
async def test_a_reply_records_its_reported_usage_and_cost(
    connect, owner, conversation, fast_frames
):
    await database_sync_to_async(_priced_catalog)()
    socket, _ = await connect(owner, conversation.pk)
    await socket.send_to(text_data=json.dumps({"action": "send", "message": "Price this"}))
    streaming = await receive_until(socket, lambda f: REPLY_ID.search(f) is not None)
    await receive_until(socket, is_final(int(REPLY_ID.search(streaming)[1])), within=20)
    row = await database_sync_to_async(Usage.objects.get)(kind="reply")
    reply = await database_sync_to_async(
        lambda: Message.objects.filter(role="assistant", conversation=conversation).last()
    )()
    assert row.user_id == owner.pk and row.message_id == reply.pk and not row.estimated
    assert (row.input_tokens, row.output_tokens) == (reply.input_tokens, reply.output_tokens)
    assert row.model == "MiniMax-M2.7" and row.api == "minimax_openai" and row.simulated
    # MiniMax-M2.7: $0.3 in, $0.06 cached in, $1.2 out per million tokens.
    cached = min(row.cached_tokens, row.input_tokens)
    expected = (
        (row.input_tokens - cached) * Decimal("0.3")
        + cached * Decimal("0.06")
        + row.output_tokens * Decimal("1.2")
    ) / 1_000_000
    assert row.cost == expected.quantize(Decimal("0.00000001")) and row.cost > 0


@pytest.mark.django_db(transaction=True)
async def test_a_stopped_reply_counts_an_estimate_flagged_as_such(
    connect, owner, conversation, settings
):
    settings.DEMO_TOKENS_PER_SECOND = 20
    socket, _ = await connect(owner, conversation.pk)
    await socket.send_to(text_data=json.dumps({"action": "send", "message": "Go slowly"}))
    await receive_until(socket, lambda f: 'data-offset="' in f and "-text" in f, within=20)
    await socket.send_to(text_data=json.dumps({"action": "stop"}))
    await receive_until(socket, lambda f: "status-stopped" in f, within=20)
    row = await database_sync_to_async(Usage.objects.get)(kind="reply")
    assert row.estimated and row.output_tokens > 0 and row.input_tokens > 0


@pytest.mark.django_db
class TestLimits:
    def test_no_quota_means_no_limit(self, owner):
        assert not limits_for(owner.pk).any
        check_send(owner.pk)

    def test_a_users_own_quota_wins_field_by_field_over_the_most_generous_group(self, owner):
        crew, officers = Group.objects.create(name="crew"), Group.objects.create(name="officers")
        owner.groups.add(crew, officers)
        Quota.objects.create(group=crew, tokens_per_day=1000, replies_at_once=1)
        Quota.objects.create(group=officers, tokens_per_day=5000)
        Quota.objects.create(user=owner, replies_at_once=3)
        limits = limits_for(owner.pk)
        assert limits.tokens_per_day == 5000 and limits.replies_at_once == 3
        assert limits.tokens_per_month is None and limits.messages_per_minute is None

    def test_replies_at_once_refuses_the_next_send_and_stores_nothing(self, owner):
        Quota.objects.create(user=owner, replies_at_once=1)
        first, second = _chat(owner), _chat(owner)
        actions.send_message(user=owner, conversation_id=first.pk, text="One")
        before = Message.objects.count()
        with pytest.raises(QuotaExceeded, match="1 reply being written, your limit"):
            actions.send_message(user=owner, conversation_id=second.pk, text="Two")
        assert Message.objects.count() == before

    def test_messages_per_minute_says_when_to_try_again(self, owner):
        Quota.objects.create(user=owner, messages_per_minute=2)
        for text in ("a", "b"):
            chat = _chat(owner)
            actions.send_message(user=owner, conversation_id=chat.pk, text=text)
        with pytest.raises(QuotaExceeded, match=r"2 messages a minute\. Try again in \d+ s\."):
            actions.send_message(user=owner, conversation_id=_chat(owner).pk, text="c")
        later = datetime.now(UTC) + timedelta(minutes=2)
        check_send(owner.pk, now=later)

    def test_tokens_per_day_resets_at_the_users_midnight(self, owner):
        owner.time_zone = "Asia/Shanghai"
        owner.save()
        Quota.objects.create(user=owner, tokens_per_day=1000)
        # 10:00 in Shanghai (02:00 UTC); 1,200 tokens used since the local midnight.
        now = datetime(2026, 3, 5, 2, 0, tzinfo=UTC)
        _used(owner, 1200, now - timedelta(hours=1))
        _used(owner, 999_999, now - timedelta(hours=3))  # the day before, in Shanghai
        with pytest.raises(QuotaExceeded) as refused:
            check_send(owner.pk, now=now)
        assert str(refused.value) == (
            "You have used your 1,000 tokens for today. The limit resets at 00:00 (in 14 h 0 min)."
        )
        check_send(owner.pk, now=now + timedelta(hours=14, minutes=1))

    def test_tokens_per_month_counts_failed_and_title_requests_too(self, owner):
        Quota.objects.create(user=owner, tokens_per_month=500)
        now = datetime(2026, 3, 20, 12, tzinfo=UTC)
        Usage.objects.create(
            user=owner,
            kind="title",
            connection="demo",
            api="x",
            model="m",
            input_tokens=300,
            output_tokens=250,
            created_at=now - timedelta(days=2),
        )
        with pytest.raises(QuotaExceeded, match="tokens for this month. The limit resets on"):
            check_send(owner.pk, now=now)
        mine = standing(owner, now=now)
        assert mine.tokens_this_month == 550 and mine.tokens_left_this_month == 0


@pytest.mark.django_db(transaction=True)
def test_two_sends_at_once_cannot_both_cross_the_limit(owner):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip(
            "SQLite's in-memory test database takes no concurrent writers; "
            "the PostgreSQL pass runs this"
        )
    Quota.objects.create(user=owner, replies_at_once=1)
    chats = [_chat(owner) for _ in range(4)]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(chats))

    def send(chat: Conversation) -> None:
        barrier.wait()
        try:
            actions.send_message(user=owner, conversation_id=chat.pk, text="at once")
            outcomes.append("sent")
        except QuotaExceeded:
            outcomes.append("refused")
        finally:
            close_old_connections()

    threads = [threading.Thread(target=send, args=(chat,)) for chat in chats]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused", "refused", "refused", "sent"]
    assert Message.objects.filter(status="streaming").count() == 1


@pytest.mark.django_db
def test_a_user_sees_their_own_usage_and_what_is_left(client_for, owner, teammate):
    Quota.objects.create(user=owner, tokens_per_day=10_000)
    now = datetime.now(UTC)
    _used(owner, 1_234, now)
    _used(teammate, 9_999, now)
    page = client_for(owner).get("/usage/").content.decode()
    assert "1,234" in page and "10,000" in page and "8,766" in page
    assert "9,999" not in page  # a teammate's usage is theirs
    assert client_for(None).get("/usage/").status_code == 302


@pytest.fixture
def staff(owner):
    owner.is_staff = owner.is_superuser = True
    owner.save()
    return owner


def _priced(user, day, tokens_in, tokens_out, cost, model="MiniMax-M2.7", connection="MiniMax"):
    Usage.objects.create(
        user=user,
        connection=connection,
        api="minimax_openai",
        model=model,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        cost=Decimal(cost),
        created_at=datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=12),
    )


@pytest.mark.django_db
def test_the_usage_report_totals_by_user_group_model_and_connection(client_for, staff, teammate):
    from datetime import date

    crew = Group.objects.create(name="crew")
    teammate.groups.add(crew)
    day = date(2026, 3, 10)
    _priced(staff, day, 1000, 500, "0.0009")
    _priced(teammate, day, 2000, 1000, "0.0018")
    _priced(teammate, day + timedelta(days=2), 100, 50, "0.5", model="M2-her", connection="=cmd")
    _priced(teammate, day + timedelta(days=40), 9, 9, "9")  # outside the period
    client = client_for(staff)
    page = client.get(
        "/admin/chat/usage/report/", {"start": "2026-03-10", "end": "2026-03-12"}
    ).content.decode()
    assert "4 requests" not in page and "3 requests, 4,650 tokens" in page
    assert "$0.5027" in page  # 0.0009 + 0.0018 + 0.5
    assert page.count("<rect ") == 3  # one bar a day, empty days included
    for label in ("owner", "teammate", "crew", "MiniMax-M2.7 (minimax_openai)", "M2-her"):
        assert label in page
    csv = client.get(
        "/admin/chat/usage/report/",
        {"start": "2026-03-10", "end": "2026-03-12", "format": "csv"},
    )
    lines = csv.content.decode().strip().splitlines()
    assert csv["Content-Type"].startswith("text/csv") and len(lines) == 4
    assert lines[0].startswith("time,user,kind,connection")
    assert "'=cmd" in lines[3]  # a spreadsheet will not run it


@pytest.mark.django_db
def test_a_reversed_period_is_refused_in_the_form(client_for, staff):
    page = client_for(staff).get(
        "/admin/chat/usage/report/", {"start": "2026-03-12", "end": "2026-03-10"}
    )
    assert page.status_code == 200 and "The period ends before it starts." in page.content.decode()


@pytest.mark.django_db
def test_only_staff_see_the_usage_report(client_for, teammate):
    response = client_for(teammate).get("/admin/chat/usage/report/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
