"""Managing conversations: rename, pin, delete, the grouped list, search, export and
import. Everything is the owner's alone: other people's ids are 404."""

from __future__ import annotations

import html
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from chat import actions
from chat.models import Conversation, Message
from chat.tree import Shape, append, current_path

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

FIXTURES = Path(__file__).parent / "fixtures"


def _chat(owner, title="", **fields):
    conversation = Conversation.objects.create(
        owner=owner, model="demo:MiniMax-M2.7", title=title, **fields
    )
    return conversation


def _branched(owner):
    """Hello → (reply A | reply B, current) → Thanks → Welcome."""
    conversation = _chat(owner, "Branched")
    question = append(conversation, role="user", content="Hello there")
    first = append(conversation, role="assistant", content="Reply A", reasoning="Thinking A")
    conversation.current_leaf = question
    second = append(
        conversation,
        role="assistant",
        content="Reply B",
        provider_data={"assistant_message": {"role": "assistant", "content": "Reply B"}},
    )
    append(conversation, role="user", content="Thanks")
    append(conversation, role="assistant", content="Welcome")
    return conversation, first, second


class TestRenamePinDelete:
    def test_rename_shows_the_new_title_and_refuses_an_empty_one(self, client_for, owner):
        conversation = _chat(owner, "Old")
        client = client_for(owner)
        response = client.post(
            f"/c/{conversation.pk}/rename/", {"title": "  Star   charts "}, HTTP_HX_REQUEST="true"
        )
        assert response.status_code == 200 and b">Rename</button>" in response.content
        conversation.refresh_from_db()
        assert conversation.title == "Star charts"
        response = client.post(
            f"/c/{conversation.pk}/rename/", {"title": " "}, HTTP_HX_REQUEST="true"
        )
        assert response.status_code == 422 and b"A title cannot be empty." in response.content
        conversation.refresh_from_db()
        assert conversation.title == "Star charts"

    def test_pin_puts_a_conversation_at_the_top_under_pinned(self, client_for, owner):
        older = _chat(owner, "Older one")
        _chat(owner, "Newer one")
        response = client_for(owner).post(
            f"/c/{older.pk}/pin/", {"pinned": "true"}, HTTP_HX_REQUEST="true"
        )
        html = response.content.decode()
        assert ">Unpin</button>" in html
        html = html[html.index('id="conversation-list"') :]
        assert html.index("Pinned") < html.index("Older one") < html.index("Newer one")
        response = client_for(owner).post(f"/c/{older.pk}/pin/", {"pinned": "false"})
        older.refresh_from_db()
        assert response.status_code == 302 and not older.pinned

    def test_delete_removes_the_conversation_and_every_version(self, client_for, owner):
        conversation, _, _ = _branched(owner)
        response = client_for(owner).post(f"/c/{conversation.pk}/delete/")
        assert response.status_code == 302 and response["Location"] == "/"
        assert not Conversation.objects.filter(pk=conversation.pk).exists()
        assert not Message.objects.filter(conversation_id=conversation.pk).exists()

    def test_delete_tells_a_running_reply_to_stop(self, client_for, owner, settings):
        from asgiref.sync import async_to_sync
        from channels.layers import get_channel_layer
        from django.test import TestCase

        from chat import events

        # One event loop per call below: the in-memory layer keeps what it was sent.
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "chat.layers.InMemoryChannelLayer"}}
        conversation = _chat(owner)
        append(conversation, role="user", content="Hi")
        reply = append(conversation, role="assistant", status="streaming", content="Half")
        layer = get_channel_layer()
        listener = async_to_sync(layer.new_channel)()
        async_to_sync(layer.group_add)(events.reply_group(reply.pk), listener)
        with TestCase.captureOnCommitCallbacks(execute=True):
            client_for(owner).post(f"/c/{conversation.pk}/delete/")
        assert async_to_sync(layer.receive)(listener) == {"type": "reply.stop"}

    @pytest.mark.parametrize("url", ["rename/", "pin/", "delete/", "export.md", "export.json", ""])
    def test_other_peoples_conversations_are_not_found(self, client_for, owner, teammate, url):
        conversation = _chat(owner, "Mine")
        client = client_for(teammate)
        if url.startswith("export") or not url:
            response = client.get(f"/c/{conversation.pk}/{url}")
        else:
            response = client.post(
                f"/c/{conversation.pk}/{url}", {"title": "Theirs", "pinned": "true"}
            )
        assert response.status_code == 404
        conversation.refresh_from_db()
        assert conversation.title == "Mine" and not conversation.pinned

    def test_signed_out_visitors_are_sent_to_log_in(self, client_for, owner):
        conversation = _chat(owner)
        for url in (f"/c/{conversation.pk}/export.json", "/search/?q=x", "/export/", "/import/"):
            response = client_for(None).get(url)
            assert response.status_code == 302 and "/login/" in response["Location"]


class TestList:
    def test_the_list_is_grouped_by_day_and_shows_the_persona(self, client_for, owner, persona):
        now = timezone.now()
        for title, days in [("Fresh", 0), ("From yesterday", 1), ("This week", 4), ("Ancient", 40)]:
            conversation = _chat(owner, title, persona=persona)
            Conversation.objects.filter(pk=conversation.pk).update(
                updated_at=now - timedelta(days=days)
            )
        html = client_for(owner).get("/").content.decode()
        order = [
            html.index(text)
            for text in (
                "Today",
                "Fresh",
                "Yesterday",
                "From yesterday",
                "Previous 7 days",
                "This week",
                "Older",
                "Ancient",
            )
        ]
        assert order == sorted(order)
        assert html.count("Test captain") >= 4

    def test_days_are_the_users_own_from_the_time_zone_the_browser_reported(
        self, client_for, owner
    ):
        from datetime import UTC, datetime
        from unittest import mock

        # 23:30 UTC on the 10th is 07:30 on the 11th in Shanghai; it is now 08:00 UTC.
        _chat(owner, "Late night")
        Conversation.objects.update(updated_at=datetime(2026, 1, 10, 23, 30, tzinfo=UTC))
        client = client_for(owner)
        with mock.patch(
            "django.utils.timezone.now", return_value=datetime(2026, 1, 11, 8, tzinfo=UTC)
        ):
            in_utc = client.get("/").content.decode()
            response = client.post("/settings/time-zone/", {"time_zone": "Asia/Shanghai"})
            assert response.status_code == 204
            in_shanghai = client.get("/").content.decode()
        assert in_utc.index("Yesterday") < in_utc.index("Late night")
        assert "Today" in in_shanghai and "Yesterday" not in in_shanghai
        assert 'data-current="Asia/Shanghai"' in in_shanghai

    def test_an_unknown_time_zone_is_refused_and_changes_nothing(self, client_for, owner):
        response = client_for(owner).post("/settings/time-zone/", {"time_zone": "Mars/Olympus"})
        assert response.status_code == 400
        assert "Unknown time zone: Mars/Olympus." in response.content.decode()
        owner.refresh_from_db()
        assert owner.time_zone == ""
        assert (
            client_for(None).post("/settings/time-zone/", {"time_zone": "UTC"}).status_code == 302
        )

    def test_more_conversations_load_page_by_page_without_repeats(self, client_for, owner):
        from chat.listing import PAGE_SIZE

        for index in range(PAGE_SIZE + 7):
            _chat(owner, f"Chat number {index:03}")
        client = client_for(owner)
        first = client.get("/").content.decode()
        assert first.count('id="conversation-link-') == PAGE_SIZE
        start = first.index('hx-get="/conversations/?')
        url = first[start + len('hx-get="') : first.index('"', start + 8)].replace("&amp;", "&")
        rest = client.get(url).content.decode()
        assert rest.count('id="conversation-link-') == 7
        assert "Today" not in rest  # the group continues without a second heading
        titles = {f"Chat number {i:03}" for i in range(PAGE_SIZE + 7)}
        assert all(title in first + rest for title in titles)

    def test_a_bad_cursor_gives_an_empty_page_not_an_error(self, client_for, owner):
        response = client_for(owner).get("/conversations/?cursor=nonsense")
        assert response.status_code == 200


class TestSearch:
    def test_search_finds_titles_and_messages_and_marks_the_match(
        self, client_for, owner, teammate
    ):
        conversation, _, _ = _branched(owner)
        _chat(owner, "Reply planning")
        theirs = _chat(teammate, "Reply of theirs")
        append(theirs, role="user", content="Reply A secret")
        html = client_for(owner).get("/search/?q=Reply").content.decode()
        assert "<mark>Reply</mark> A" in html and "<mark>Reply</mark> planning" in html
        assert "theirs" not in html and "secret" not in html
        message = conversation.messages.get(content="Reply A")
        assert f"/c/{conversation.pk}/?m={message.pk}#m-{message.pk}" in html

    def test_search_results_escape_message_text(self, client_for, owner):
        conversation = _chat(owner)
        append(conversation, role="user", content="<script>alert('x')</script> needle")
        html = client_for(owner).get("/search/?q=needle").content.decode()
        assert "<script>alert" not in html and "&lt;script&gt;" in html
        assert "<mark>needle</mark>" in html

    def test_a_result_on_another_branch_opens_that_branch(self, client_for, owner):
        conversation, first, _ = _branched(owner)
        html = client_for(owner).get(f"/c/{conversation.pk}/?m={first.pk}").content.decode()
        assert "Reply A" in html and "Welcome" not in html
        conversation.refresh_from_db()
        assert conversation.current_leaf_id == first.pk


class TestExportImport:
    def test_markdown_has_the_current_branch_with_reasoning_folded(self, client_for, owner):
        conversation, _, _ = _branched(owner)
        conversation.messages.filter(content="Reply B").update(reasoning="Thinking B")
        response = client_for(owner).get(f"/c/{conversation.pk}/export.md")
        text = response.content.decode()
        assert response["Content-Disposition"] == 'attachment; filename="branched.md"'
        assert "# Branched" in text and "Reply B" in text and "Reply A" not in text
        assert "<details>\n<summary>Thinking</summary>\n\nThinking B" in text

    def test_json_round_trips_the_whole_tree_and_can_be_continued(self, client_for, owner):
        conversation, first, second = _branched(owner)
        client = client_for(owner)
        exported = client.get(f"/c/{conversation.pk}/export.json").content
        document = json.loads(exported)
        assert document["format"] == "parley.conversation"
        assert len(document["conversation"]["messages"]) == 5
        response = client.post("/import/", {"file": SimpleUploadedFile("c.json", exported)})
        assert response.status_code == 302
        copy = Conversation.objects.filter(owner=owner).exclude(pk=conversation.pk).get()
        path = [m.content for m in current_path(copy)]
        assert path == ["Hello there", "Reply B", "Thanks", "Welcome"]
        copied = copy.messages.get(content="Reply B")
        assert copied.provider_data == second.provider_data
        assert Shape.of(copy).versions(copied.pk).count == 2
        assert copy.messages.get(content="Reply A").reasoning == "Thinking A"
        sent = actions.send_message(user=owner, conversation_id=copy.pk, text="Go on")
        assert sent.context is not None
        assert [m.content for m in sent.context.request.messages][-3:] == [
            "Thanks",
            "Welcome",
            "Go on",
        ]

    def test_export_all_holds_every_conversation_and_imports_back(
        self, client_for, owner, teammate
    ):
        _branched(owner)
        _chat(owner, "Second")
        _chat(teammate, "Not mine")
        exported = client_for(owner).get("/export/").content
        document = json.loads(exported)
        assert [c["title"] for c in document["conversations"]] == ["Branched", "Second"]
        actions.import_conversations(user=teammate, raw=exported)
        assert Conversation.objects.filter(owner=teammate).count() == 3

    def test_open_webui_export_imports_with_its_branches(self, owner):
        (conversation,) = actions.import_conversations(
            user=owner, raw=(FIXTURES / "openwebui-chat-export.json").read_bytes()
        )
        assert conversation.title == "Packing for the Kestrel" and conversation.pinned
        assert [m.content for m in current_path(conversation)][-1].startswith("The galley")
        assert conversation.messages.count() == 5
        first = conversation.messages.get(content__startswith="Layers")
        assert Shape.of(conversation).versions(first.pk).count == 2

    def test_chatgpt_export_imports_skipping_system_and_tool_nodes(self, owner):
        (conversation,) = actions.import_conversations(
            user=owner, raw=(FIXTURES / "chatgpt-conversations.json").read_bytes()
        )
        path = [(m.role, m.content) for m in current_path(conversation)]
        assert path == [
            ("user", "How do I read a star chart?"),
            ("assistant", "Find the horizon line first, then the bright stars."),
            ("user", "Which are the bright ones in winter?"),
            ("assistant", "Sirius, Betelgeuse and Rigel."),
        ]
        assert conversation.messages.count() == 5  # the other version of the first answer

    @pytest.mark.parametrize(
        ("content", "problem"),
        [
            (b"not json", "not valid JSON"),
            (b"\xff\xfe", "not UTF-8"),
            (b'{"hello": 1}', "not a conversation export Parley knows"),
            (b'{"format": "parley.export", "version": 9, "conversations": []}', "version 9"),
            (
                b'{"format": "parley.conversation", "version": 1, "conversation": {"messages": '
                b'[{"id": 1, "parent": null, "role": "user", "content": "a"}, '
                b'{"id": 2, "parent": 1, "role": "tool", "content": "b"}]}}',
                "Conversation 1, message 2: role must be user or assistant, not 'tool'",
            ),
            (
                b'{"format": "parley.conversation", "version": 1, "conversation": {"messages": '
                b'[{"id": 1, "parent": 7, "role": "user", "content": "a"}]}}',
                "its parent '7' is missing",
            ),
            (
                b'{"format": "parley.conversation", "version": 1, "conversation": {"messages": '
                b'[{"id": 1, "parent": 2, "role": "user", "content": "a"}, '
                b'{"id": 2, "parent": 1, "role": "assistant", "content": "b"}]}}',
                "form a loop",
            ),
        ],
    )
    def test_bad_files_are_refused_with_the_problem_named_and_nothing_stored(
        self, client_for, owner, content, problem
    ):
        response = client_for(owner).post(
            "/import/", {"file": SimpleUploadedFile("x.json", content)}
        )
        assert response.status_code == 422
        assert problem in html.unescape(response.content.decode())
        assert not Conversation.objects.filter(owner=owner).exists()

    def test_a_file_failing_halfway_stores_none_of_its_conversations(self, owner):
        good = json.loads((FIXTURES / "openwebui-chat-export.json").read_text())[0]
        bad = {"title": "Broken", "chat": {"history": {"messages": {"x": "not an object"}}}}
        with pytest.raises(actions.ActionError, match="Conversation 2, message 'x'"):
            actions.import_conversations(user=owner, raw=json.dumps([good, bad]).encode())
        assert not Conversation.objects.filter(owner=owner).exists()

    def test_files_over_the_limit_are_refused(self, client_for, owner, settings):
        settings.IMPORT_MAX_BYTES = 1024
        response = client_for(owner).post(
            "/import/", {"file": SimpleUploadedFile("x.json", b" " * 2048)}
        )
        assert response.status_code == 422 and "larger than" in response.content.decode()


class TestLongConversations:
    def test_a_long_branch_opens_with_its_newest_messages_and_loads_older_ones(
        self, client_for, owner
    ):
        from chat.tree import PAGE_MESSAGES

        conversation = _chat(owner, "Long")
        for index in range(PAGE_MESSAGES * 2 + 10):
            append(
                conversation, role="user" if index % 2 == 0 else "assistant", content=f"m{index}#"
            )
        client = client_for(owner)
        html = client.get(f"/c/{conversation.pk}/").content.decode()
        assert html.count('class="message ') == PAGE_MESSAGES
        assert f"m{PAGE_MESSAGES * 2 + 9}#" in html and "m0#" not in html
        seen = html.count('class="message ')
        while 'class="older-messages"' in html:
            start = html.index('hx-get="', html.index('class="older-messages"')) + len('hx-get="')
            html = client.get(
                html[start : html.index('"', start)].replace("&amp;", "&")
            ).content.decode()
            seen += html.count('class="message ')
        assert seen == PAGE_MESSAGES * 2 + 10 and "m0#" in html

    def test_older_messages_of_someone_elses_conversation_are_not_found(
        self, client_for, owner, teammate
    ):
        conversation = _chat(owner)
        message = append(conversation, role="user", content="Private")
        response = client_for(teammate).get(f"/c/{conversation.pk}/older/?before={message.pk}")
        assert response.status_code == 404
