"""English and Simplified Chinese: chosen from the browser or the Language switch, for
pages, socket frames and the admin; the catalogue is complete."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import polib
import pytest
from django.test import Client

from chat.tree import append

pytestmark = pytest.mark.django_db

CATALOGUE = Path(__file__).resolve().parent.parent / "locale" / "zh_Hans" / "LC_MESSAGES"


def test_the_chinese_catalogue_is_complete_and_compiled():
    po = polib.pofile(str(CATALOGUE / "django.po"))
    assert not po.untranslated_entries() and not po.fuzzy_entries()
    mo = {entry.msgid: entry.msgstr for entry in polib.mofile(str(CATALOGUE / "django.mo"))}
    for entry in po:
        if not entry.msgid_plural:
            assert mo.get(entry.msgid) == entry.msgstr, f"recompile: {entry.msgid!r}"


def _visible_text(page: str) -> str:
    page = re.sub(r"<script.*?</script>", " ", page, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", page)
    attributes = " ".join(re.findall(r'(?:aria-label|placeholder|title)="([^"]*)"', page))
    return html.unescape(text + " " + attributes)


def _untranslated(text: str) -> list[str]:
    """Catalogue sentences (of two words or more) that show in English."""
    po = polib.pofile(str(CATALOGUE / "django.po"))
    found = []
    for entry in po:
        english = entry.msgid
        if "%(" in english or "{" in english or len(english.split()) < 2:
            continue
        if english != entry.msgstr and re.search(rf"(?<![\w-]){re.escape(english)}(?![\w-])", text):
            found.append(english)
    return found


def test_the_main_pages_show_no_english_in_chinese(client_for, owner, conversation):
    append(conversation, role="user", content="你好")
    append(conversation, role="assistant", content="你好！", output_tokens=3)
    client = client_for(owner)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "zh-Hans,zh;q=0.9,en;q=0.5"
    pages = {
        url: client.get(url).content.decode()
        for url in (
            "/",
            f"/c/{conversation.pk}/",
            "/search/?q=你好",
            "/import/",
            "/usage/",
            "/personas/",
            "/personas/new/",
        )
    }
    anonymous = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
    pages["/login/"] = anonymous.get("/login/").content.decode()
    pages["/signup/"] = anonymous.get("/signup/").content.decode()
    for url, page in pages.items():
        assert '<html lang="zh-hans">' in page, url
        assert _untranslated(_visible_text(page)) == [], url
    assert "新对话" in pages["/"] and "重新生成" not in pages["/"]
    assert "复制消息" in pages[f"/c/{conversation.pk}/"]


def test_english_stays_the_default(client_for, owner):
    page = client_for(owner).get("/").content.decode()
    assert '<html lang="en">' in page and "New chat" in page


def test_the_language_switch_is_kept_for_the_visitor(client_for, owner):
    client = client_for(owner)
    response = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    assert response.status_code == 302
    assert "新对话" in client.get("/").content.decode()
    anonymous = Client()
    anonymous.post("/i18n/setlang/", {"language": "zh-hans", "next": "/login/"})
    assert "登录" in anonymous.get("/login/").content.decode()


def test_the_admin_speaks_chinese_too(owner):
    owner.is_staff = owner.is_superuser = True
    owner.save()
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-Hans")
    client.force_login(owner)
    assert "站点管理" in client.get("/admin/").content.decode()


@pytest.mark.django_db(transaction=True)
async def test_socket_frames_speak_the_pages_language(owner, conversation):
    from channels.db import database_sync_to_async
    from channels.testing import WebsocketCommunicator

    from project.asgi import application
    from tests.conftest import _session_cookie

    cookie = await database_sync_to_async(_session_cookie)(owner)
    headers = [
        (b"origin", b"http://127.0.0.1"),
        (b"host", b"127.0.0.1"),
        (b"cookie", f"{cookie}; django_language=zh-hans".encode()),
    ]
    socket = WebsocketCommunicator(application, f"/ws/c/{conversation.pk}/", headers=headers)
    connected, _ = await socket.connect(timeout=5)
    assert connected
    await socket.send_to(text_data=json.dumps({"action": "send", "message": "  "}))
    frame = ""
    while "composer-error" not in frame or "请先输入消息" not in frame:
        frame = await socket.receive_from(timeout=5)
    await socket.disconnect()


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("Could not reach the provider.", "无法连接到服务商。"),
        ("The provider did not start answering within 2.5 s.", "服务商在 2.5 秒内没有开始回答。"),
        ("The provider said: quota exceeded.", "The provider said: quota exceeded."),
        (
            "Max output tokens is at most 2,048 for M2-her on MiniMax API (got 4,096).",
            "MiniMax API 上的 M2-her 最大输出 token 数最多为 2,048（当前为 4,096）。",
        ),
    ],
)
def test_a_replys_error_sentence_shows_in_the_readers_language(stored, shown):
    from django.utils import translation

    from chat.rendering import MessageView

    view = MessageView(id=1, role="assistant", status="failed", content="", error=stored)
    with translation.override("zh-hans"):
        assert view.error_text == shown
    with translation.override("en"):
        assert view.error_text == stored
