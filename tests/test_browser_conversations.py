"""Working with conversations in Chromium: versions, edits, retries, and managing the
list, each through the controls' accessible names."""

from __future__ import annotations

import re

import pytest

from tests.live import browser_site, new_chat, queue_fault, socket_open

pytestmark = [pytest.mark.browser, pytest.mark.integration]

DEMO = "Offline demo (simulated replies)"
DONE = ".message.assistant.status-complete"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """One server with fast, short simulated replies, and one signed-in page."""
    tmp = tmp_path_factory.mktemp("conversations")
    with browser_site(tmp, DEMO_REPLY_TOKENS="20") as site:
        yield site.base_url, site.page, site.simulator_url


def _new_chat(page, base_url):
    new_chat(page, base_url, model=DEMO)


def _send(page, text, replies_before=None):
    done = page.locator(DONE)
    count = done.count() if replies_before is None else replies_before
    page.get_by_label("Message", exact=True).fill(text)
    page.get_by_label("Message", exact=True).press("Enter")
    done.nth(count).wait_for()


def test_regenerate_keeps_both_versions_and_the_arrows_switch_between_them(site):
    base_url, page, _ = site
    _new_chat(page, base_url)
    _send(page, "Tell me about the Kestrel")
    first = page.locator(DONE).last.get_attribute("id")
    page.get_by_role("button", name="Regenerate").last.click()
    page.get_by_text("2 / 2").wait_for()
    page.locator(f"{DONE}:not(#{first})").last.wait_for()
    second = page.locator(DONE).last.get_attribute("id")
    assert second != first
    page.get_by_role("button", name="Previous version").click()
    page.get_by_text("1 / 2").wait_for()
    assert page.locator(f"#{first}").is_visible() and page.locator(f"#{second}").count() == 0
    page.get_by_role("button", name="Next version").click()
    page.get_by_text("2 / 2").wait_for()
    page.reload()  # the choice is stored
    page.get_by_text("2 / 2").wait_for()
    assert page.locator(f"#{second}").count() == 1


def test_edit_makes_a_new_branch_that_the_next_message_continues(site):
    base_url, page, _ = site
    _new_chat(page, base_url)
    _send(page, "Original question")
    page.get_by_role("button", name="Edit").click()
    editor = page.get_by_label("Revised text")
    editor.fill("Better question")
    page.get_by_role("button", name="Save and send").click()
    page.locator(".message.user", has_text="Better question").wait_for()
    page.locator(DONE).last.wait_for()
    assert page.locator(".message.user", has_text="Original question").count() == 0
    _send(page, "Follow-up", replies_before=1)
    users = page.locator(".message.user .user-text").all_text_contents()
    assert users == ["Better question", "Follow-up"]
    # The first message now has two versions; the old branch is one click away.
    page.get_by_role("button", name="Previous version").first.click()
    page.locator(".message.user", has_text="Original question").wait_for()
    assert page.locator(".message.user", has_text="Follow-up").count() == 0


def test_retry_after_a_failure_answers_without_retyping(site):
    base_url, page, simulator_url = site
    _new_chat(page, base_url)
    queue_fault(simulator_url, "status=401")
    page.get_by_label("Message", exact=True).fill("Are you there?")
    page.get_by_label("Message", exact=True).press("Enter")
    page.locator(".message.assistant.status-failed").wait_for()
    page.get_by_role("button", name="Retry").click()
    page.locator(DONE).last.wait_for()
    page.get_by_text("2 / 2").wait_for()
    assert page.locator(".message.user").count() == 1


def test_rename_pin_and_delete_from_the_conversation_header(site):
    base_url, page, _ = site
    _new_chat(page, base_url)
    _send(page, "Something to keep")
    assert page.get_by_label("Title").is_hidden()  # until asked for
    page.get_by_role("button", name="Rename").click()
    page.get_by_label("Title").fill("Ship's log")
    page.get_by_role("button", name="Save").click()
    page.locator("#chat-title", has_text="Ship's log").wait_for()
    page.locator("[aria-current=page]", has_text="Ship's log").wait_for()

    page.get_by_role("button", name="Pin").click()
    page.get_by_role("button", name="Unpin").wait_for()
    sidebar = page.locator("#conversation-list")
    labels = sidebar.locator("li").all_text_contents()
    assert labels[0].strip() == "Pinned" and "Ship's log" in labels[1]

    page.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog")
    assert "Delete this conversation?" in dialog.text_content()
    dialog.get_by_role("button", name="Delete").click()
    page.wait_for_url(f"{base_url}/")
    assert page.get_by_text("Ship's log").count() == 0 or "Deleted" in page.content()
    assert page.locator("#conversation-list", has_text="Ship's log").count() == 0


def test_search_finds_a_message_and_opens_its_conversation(site):
    base_url, page, _ = site
    _new_chat(page, base_url)
    _send(page, "Where is the quartermaster's ledger?")
    page.get_by_label("Search conversations").first.fill("quartermaster")
    page.get_by_label("Search conversations").first.press("Enter")
    page.wait_for_url("**/search/?q=quartermaster")
    # The title matches too (it came from the message); open the message's own hit.
    hit = page.locator(".hits li", has=page.locator("a[href*='?m=']")).first
    assert hit.locator("mark").first.text_content().lower() == "quartermaster"
    hit.get_by_role("link").click()
    page.wait_for_url(re.compile(r".*/c/\d+/\?m=\d+#m-\d+"))
    page.locator(".message.user", has_text="quartermaster").wait_for()


def test_export_then_import_and_continue(site, tmp_path):
    base_url, page, _ = site
    _new_chat(page, base_url)
    _send(page, "Remember the password is tea")
    page.get_by_text("Export", exact=True).click()
    with page.expect_download() as download:
        page.get_by_role("link", name="JSON").click()
    saved = tmp_path / "export.json"
    download.value.save_as(saved)
    with page.expect_download() as markdown:
        page.get_by_role("link", name="Markdown").click()
    assert markdown.value.suggested_filename.endswith(".md")

    page.get_by_role("link", name="Import").click()
    page.get_by_label("JSON file").set_input_files(saved)
    page.get_by_role("button", name="Import").click()
    page.wait_for_url("**/c/*/")
    page.locator(".message.user", has_text="password is tea").wait_for()
    socket_open(page)
    _send(page, "What did I say?")
    assert page.locator(".message.user").count() == 2


def test_a_long_conversation_loads_older_messages_when_scrolled_up(site, tmp_path):
    import json

    base_url, page, _ = site
    messages = [
        {
            "id": index,
            "parent": index - 1 if index else None,
            "role": "user" if index % 2 == 0 else "assistant",
            "content": f"Line number {index}",
        }
        for index in range(120)
    ]
    document = {
        "format": "parley.conversation",
        "version": 1,
        "conversation": {
            "title": "Long voyage",
            "model": "demo:MiniMax-M2.7",
            "messages": messages,
        },
    }
    saved = tmp_path / "long.json"
    saved.write_text(json.dumps(document))
    page.goto(f"{base_url}/import/")
    page.get_by_label("JSON file").set_input_files(saved)
    page.get_by_role("button", name="Import").click()
    page.wait_for_url("**/c/*/")

    def line(number):
        return page.locator(".message .body", has_text=re.compile(rf"^\s*Line number {number}\s*$"))

    line(119).wait_for()
    assert line(0).count() == 0
    for _ in range(6):  # each scroll to the top brings one more page
        if line(0).count():
            break
        page.locator("#messages").evaluate("el => { el.scrollTop = 0; }")
        page.wait_for_timeout(400)
    line(0).wait_for()
    assert page.locator(".message").count() == 120


def test_the_conversation_list_loads_more_as_it_scrolls(site, tmp_path):
    import json

    from chat.listing import PAGE_SIZE

    base_url, page, _ = site
    conversations = [
        {
            "title": f"Voyage {index:03}",
            "model": "demo:MiniMax-M2.7",
            "messages": [{"id": 1, "parent": None, "role": "user", "content": "Ahoy"}],
        }
        for index in range(PAGE_SIZE + 5)
    ]
    document = {"format": "parley.export", "version": 1, "conversations": conversations}
    saved = tmp_path / "many.json"
    saved.write_text(json.dumps(document))
    page.goto(f"{base_url}/import/")
    page.get_by_label("JSON file").set_input_files(saved)
    page.get_by_role("button", name="Import").click()
    page.wait_for_url(f"{base_url}/")
    assert page.get_by_text(f"Imported {PAGE_SIZE + 5} conversations.").is_visible()
    sidebar = page.locator("#conversation-list")
    links = sidebar.locator("a[id^=conversation-link-]")
    shown = links.count()
    assert shown >= PAGE_SIZE and sidebar.get_by_text("Voyage 000").count() == 0
    sidebar.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    sidebar.get_by_text("Voyage 000").wait_for()
    assert links.count() > shown
