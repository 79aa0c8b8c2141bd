"""In Chromium, a send whose reply the page showed before it was stored
(chat.provisional), refused when stored: the page takes it back and keeps the text."""

from __future__ import annotations

import pytest

from tests.live import WATCH_EXCHANGE, browser_site, new_chat, sign_up

pytestmark = [pytest.mark.browser, pytest.mark.integration]


@pytest.fixture(scope="module")
def open_site(tmp_path_factory):
    """A site of its own (no quotas, so sends start early) where anyone may sign up.
    (One Playwright per module: a second one in the same thread refuses to start.)"""
    with browser_site(tmp_path_factory.mktemp("taken-back"), SIGNUP_MODE="open") as site:
        yield site


def test_a_send_refused_once_its_reply_began_to_show_is_taken_back_and_its_text_kept(open_site):
    """The page shows a send's reply before the send is stored (chat.provisional). When
    the store refuses it (here the admin made the persona someone else's in between),
    the page takes the exchange back and puts the text back in the composer."""
    base_url, admin = open_site.base_url, open_site.page
    admin.goto(f"{base_url}/admin/chat/personapreset/add/")
    admin.get_by_label("Name:", exact=True).fill("Night desk")
    admin.get_by_label("System prompt:").fill("You answer the night shift's questions.")
    admin.get_by_role("button", name="Save", exact=True).click()
    admin.get_by_text("was added successfully").wait_for()

    user = open_site.chromium.new_context(bypass_csp=True).new_page()
    user.set_default_timeout(20_000)
    sign_up(user, base_url, "bea")
    new_chat(user, base_url, persona="Night desk")
    composer = user.get_by_label("Message", exact=True)
    composer.fill("Is the bridge open?")
    composer.press("Enter")
    user.locator(".message.assistant.status-complete").last.wait_for()

    admin.goto(f"{base_url}/admin/chat/personapreset/")
    admin.get_by_role("link", name="Night desk").click()
    admin.get_by_label("Owner:").fill("1")  # ada's own, from now on
    admin.get_by_role("button", name="Save", exact=True).click()
    admin.get_by_text("was changed successfully").wait_for()

    user.evaluate(WATCH_EXCHANGE, "And the tunnel?")
    composer.fill("And the tunnel?")
    composer.press("Enter")
    user.get_by_text("This conversation's persona is no longer available to you.").wait_for()

    assert composer.input_value() == "And the tunnel?"
    seen = user.evaluate("window.seen")
    assert seen["provisional"] > 0, "its reply had begun to show"
    assert user.locator(".provisional, .awaiting-swap").count() == 0
    assert user.locator(".message.user").count() == 1
    user.reload()
    assert user.locator(".message.user").count() == 1  # nothing of it was stored
