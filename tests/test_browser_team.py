"""Running Parley for a team, in Chromium: quotas set in the admin, the refusal a user
sees (their text kept), their usage page, and the admin's usage report."""

from __future__ import annotations

import pytest

from tests.live import browser_site, new_chat

pytestmark = [pytest.mark.browser, pytest.mark.integration]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with browser_site(tmp_path_factory.mktemp("team")) as site:  # ada: the admin
        yield site.base_url, site.page


def test_a_quota_set_in_the_admin_refuses_with_a_sentence_and_keeps_the_text(site):
    base_url, page = site
    page.goto(f"{base_url}/admin/chat/quota/add/")
    page.get_by_label("User").fill("1")
    page.get_by_label("Messages per minute").fill("1")
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_text("was added successfully").wait_for()

    new_chat(page, base_url)
    composer = page.get_by_label("Message", exact=True)
    composer.fill("The first one")
    composer.press("Enter")
    page.locator(".message.assistant.status-complete").last.wait_for()
    composer.fill("One too many")
    composer.press("Enter")
    page.get_by_text("You can send 1 message a minute. Try again in").wait_for()
    assert composer.input_value() == "One too many"

    page.goto(f"{base_url}/usage/")
    assert page.get_by_role("row", name="Messages per minute").inner_text().split()[-3] == "1"
    page.get_by_role("cell", name="MiniMax-M2.7 · Offline demo (simulated)").first.wait_for()


def test_the_admin_usage_report_shows_totals_a_chart_and_a_csv(site):
    base_url, page = site
    page.goto(f"{base_url}/admin/chat/usage/")
    page.get_by_role("link", name="Usage report").click()
    page.get_by_role("img", name="Tokens (bars) and cost (line) per day").wait_for()
    page.get_by_role("heading", name="By user").wait_for()
    page.get_by_role("row", name="ada").first.wait_for()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    assert download.value.suggested_filename.startswith("parley-usage-")


def test_a_group_made_in_the_admin_shows_in_the_audit_log_which_filters(site):
    base_url, page = site
    page.goto(f"{base_url}/admin/auth/group/add/")
    page.get_by_label("Name").fill("crew")
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_text("was added successfully").wait_for()
    page.goto(f"{base_url}/admin/chat/auditevent/")
    page.get_by_role("row", name="crew").wait_for()
    page.get_by_role("link", name="signed up").click()
    page.wait_for_url("**action__exact=sign_up**")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1 and "ada" in rows.first.inner_text()
    assert page.get_by_role("link", name="Add audit event").count() == 0  # read-only


def test_once_the_admin_allows_it_a_user_makes_a_private_persona_and_chats_with_it(site):
    base_url, page = site
    page.goto(f"{base_url}/personas/")
    page.get_by_text("Private personas are not enabled here. Ask an admin.").wait_for()
    page.goto(f"{base_url}/admin/chat/sitesettings/")
    page.get_by_label("Users create personas").check()
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_text("was changed successfully").wait_for()

    page.goto(f"{base_url}/personas/")
    page.get_by_role("link", name="New persona").click()
    page.get_by_label("Name", exact=True).fill("Quiet muse")
    page.get_by_label("Greeting").fill("Speak softly.")
    page.get_by_role("button", name="Save persona").click()
    page.get_by_text("Saved “Quiet muse”.").wait_for()
    page.goto(f"{base_url}/")
    page.get_by_label("Persona").select_option(label="Quiet muse")
    page.get_by_role("button", name="New chat").click()
    page.locator(".message.assistant", has_text="Speak softly.").wait_for()
