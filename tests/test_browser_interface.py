"""The everyday interface in Chromium: code and copy, keyboard, phone, themes, pickers."""

from __future__ import annotations

import pytest

from tests.live import browser_site, new_chat, queue_fault, socket_open

pytestmark = [pytest.mark.browser, pytest.mark.integration]

DONE = ".message.assistant.status-complete"
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with browser_site(tmp_path_factory.mktemp("interface")) as site:
        yield site.base_url, site.chromium, site.context, site.simulator_url


def _chat(page, base_url, persona="No persona"):
    new_chat(page, base_url, persona=persona)


def test_code_is_highlighted_and_copy_buttons_work_by_keyboard(site):
    base_url, _, context, simulator_url = site
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    _chat(page, base_url)
    page.get_by_label("Message", exact=True).fill("Show me some code")
    page.get_by_label("Message", exact=True).press("Enter")
    reply = page.locator(DONE).last
    reply.locator("pre code").wait_for()
    assert reply.locator("pre code [class^=hl-]").count() > 0  # highlighted on the server
    copy = reply.get_by_role("button", name="Copy", exact=True).first
    copy.focus()
    page.keyboard.press("Enter")
    reply.get_by_role("button", name="Copy", exact=True).first.filter(has_text="Copied").wait_for()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == reply.locator("pre code").first.inner_text().rstrip("\n")
    reply.get_by_role("button", name="Copy message").click()
    assert "Offline demo" in page.evaluate("navigator.clipboard.readText()")
    page.close()


def test_finished_blocks_show_rendered_while_the_reply_streams_and_do_not_move(site):
    base_url, _, context, simulator_url = site
    page = context.new_page()
    _chat(page, base_url)
    queue_fault(simulator_url, "pace=15")
    page.get_by_label("Message", exact=True).fill("Explain with code")
    page.get_by_label("Message", exact=True).press("Enter")
    streaming = page.locator(".message.assistant.status-streaming")
    # The opening paragraph's "*(Offline demo …)*" shows as emphasis, not asterisks.
    first = streaming.locator(".settled > p").first
    first.wait_for()
    assert first.locator("em").count() == 1
    assert "*(Offline" not in streaming.locator(".body").inner_text()
    reply_id = streaming.get_attribute("id")
    # The raw text of what is rendered stays in the page, hidden, whole.
    raw = page.locator(f"#{reply_id}-text").text_content()
    assert "*(Offline demo" in raw and page.locator(f"#{reply_id}-text .settled-raw").is_hidden()
    # Measured from the top of the reply's body (the thinking block above it folds away).
    body = page.locator(f"#{reply_id} .body")
    text, top = first.inner_text(), first.bounding_box()["y"] - body.bounding_box()["y"]
    page.locator(f"#{reply_id}.status-complete").wait_for(timeout=60_000)
    after = page.locator(f"#{reply_id} .body > p").first
    assert after.inner_text() == text
    assert abs(after.bounding_box()["y"] - body.bounding_box()["y"] - top) < 1
    page.close()


def test_the_keyboard_reaches_everything(site):
    base_url, _, context, simulator_url = site
    page = context.new_page()
    _chat(page, base_url)
    # The composer has focus on load; the first Tab stop is the skip link.
    assert page.evaluate("document.activeElement.id") == "composer-input"
    first = page.evaluate(
        "document.querySelector('a[href], button, input, select, textarea').textContent"
    )
    assert first == "Skip to the message box"
    page.get_by_role("link", name="Skip to the message box").focus()
    assert page.get_by_role("link", name="Skip to the message box").is_visible()
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "composer-input"
    # ? opens the shortcuts, Esc closes them.
    page.locator("#messages").click()
    page.keyboard.press("?")
    dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    dialog.wait_for()
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    # Esc stops a reply being written.
    page.evaluate("document.querySelector('#composer-input').focus()")
    queue_fault(simulator_url, "pace=5")  # slow enough to stop
    page.get_by_label("Message", exact=True).fill("A long answer please")
    page.get_by_label("Message", exact=True).press("Enter")
    page.locator(".message.assistant.status-streaming .streaming-text").wait_for()
    page.keyboard.press("Escape")
    page.locator(".message.assistant.status-stopped").wait_for()
    # Ctrl+Shift+O starts a new chat.
    before = page.url
    page.keyboard.press("Control+Shift+O")
    page.wait_for_url(lambda url: url != before and "/c/" in url)
    # Focus is visible.
    page.keyboard.press("Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    page.close()


def test_every_action_works_on_a_phone(site):
    base_url, chromium, _, _ = site
    context = chromium.new_context(bypass_csp=True, viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    # A session of its own (logging out below must not end the other tests' session).
    page.goto(f"{base_url}/login/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("a-long-passphrase-9")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base_url}/")
    assert not page.locator("#sidebar").is_visible()
    menu = page.get_by_role("button", name="Menu")
    menu.click()
    page.get_by_role("button", name="New chat").click()
    page.wait_for_url("**/c/*/")
    socket_open(page)
    page.get_by_label("Message", exact=True).fill("Hello from a phone")
    page.get_by_label("Message", exact=True).press("Enter")
    page.locator(DONE).last.wait_for()
    box = page.locator("#composer-input").bounding_box()
    assert box["y"] + box["height"] <= PHONE["height"]
    page.get_by_text("Parameters", exact=True).click()
    page.get_by_label("Temperature").wait_for()
    page.get_by_role("button", name="Menu").click()
    sidebar = page.locator("#sidebar")
    sidebar.wait_for()
    assert sidebar.get_by_role("link", name="Hello from a phone").first.is_visible()
    assert sidebar.get_by_role("button", name="Log out").is_visible()
    assert sidebar.get_by_role("link", name="Admin").is_visible()
    sidebar.get_by_role("link", name="Hello from a phone").first.click()
    page.wait_for_url("**/c/*/")
    page.get_by_role("button", name="Menu").click()
    sidebar.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login/**")
    context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_chat_renders_in_both_themes(site, scheme):
    base_url, _, context, simulator_url = site
    page = context.new_page()
    page.emulate_media(color_scheme=scheme)
    _chat(page, base_url)
    background = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
    assert background == ("rgb(246, 247, 249)" if scheme == "light" else "rgb(15, 18, 24)")
    page.close()


def test_a_persona_selects_its_model_and_shows_its_description(site):
    base_url, _, context, simulator_url = site
    page = context.new_page()
    page.goto(f"{base_url}/")
    assert page.get_by_label("Model").input_value() == "demo:MiniMax-M2.7"
    page.get_by_label("Persona").select_option(label="Captain Mara Voss")
    assert page.get_by_label("Model").input_value() == "demo:M2-her"
    assert page.locator("#persona-description").inner_text().strip()
    page.close()


def _serious_violations(page):
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — "
        + "; ".join(node["target"][0] for node in v["nodes"][:3])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_main_pages_have_no_serious_accessibility_violations(site, scheme):
    base_url, chromium, context, _ = site
    page = context.new_page()
    page.emulate_media(color_scheme=scheme)
    _chat(page, base_url)
    page.get_by_label("Message", exact=True).fill("Show me a table and some code")
    page.get_by_label("Message", exact=True).press("Enter")
    page.locator(DONE).last.locator("pre code").wait_for()
    conversation = page.url
    found = {}
    for path in (conversation, "/", "/search/?q=table", "/import/", "/admin/"):
        page.goto(path if path.startswith("http") else f"{base_url}{path}")
        found[path] = _serious_violations(page)
    anonymous = chromium.new_context(bypass_csp=True, color_scheme=scheme).new_page()
    for path in ("/login/", "/signup/"):
        anonymous.goto(f"{base_url}{path}")
        found[path] = _serious_violations(anonymous)
    assert not any(found.values()), found
    page.close()


def test_the_account_keeps_the_browsers_time_zone(site):
    base_url, chromium, context, _ = site
    in_shanghai = chromium.new_context(
        storage_state=context.storage_state(), timezone_id="Asia/Shanghai", bypass_csp=True
    )
    page = in_shanghai.new_page()
    page.goto(f"{base_url}/")
    page.wait_for_function(
        "document.getElementById('time-zone-form').dataset.current === 'Asia/Shanghai'"
    )
    page.reload()  # kept on the account: the server renders it now
    assert page.locator("#time-zone-form").get_attribute("data-current") == "Asia/Shanghai"
    in_shanghai.close()


def test_an_admin_imports_a_character_card_and_chats_with_it(site):
    from pathlib import Path

    base_url, _, context, _ = site
    page = context.new_page()
    page.goto(f"{base_url}/admin/chat/personapreset/")
    page.get_by_role("link", name="Import character card").click()
    card = Path(__file__).parent / "fixtures" / "cards" / "lin_v2.json"
    page.get_by_label("Character card").set_input_files(str(card))
    page.get_by_role("button", name="Import").click()
    page.get_by_text("Imported “Archivist Lin” from the card.").wait_for()
    _chat(page, base_url, persona="Archivist Lin")
    page.locator(".message.assistant", has_text="Welcome. What are you looking for?").wait_for()
    page.close()
