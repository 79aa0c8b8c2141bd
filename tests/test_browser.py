"""A person's path through Parley in Chromium, against real daphne processes."""

from __future__ import annotations

import os
import time

import pytest

from tests.live import (
    CHROMIUM_ARGS,
    WATCH_EXCHANGE,
    daphne,
    e2e_database,
    free_port,
    migrate,
    server_env,
    socket_open,
)
from tests.live import sign_up as _sign_up

pytestmark = [pytest.mark.browser, pytest.mark.integration]

STREAMING_TEXT = ".message.assistant.status-streaming .streaming-text"
# Tests wait with page.wait_for_function, which evaluates strings: our CSP forbids that,
# so functional tests bypass it. The CSP test below does not, and waits with locators.


@pytest.fixture
def servers(tmp_path):
    """One server; two sharing the database and Redis when the run has Redis."""
    with e2e_database(tmp_path) as database_url:
        env = server_env(database_url)
        migrate(env)
        with daphne(env, tmp_path / "daphne-a.log") as first:
            if os.environ.get("REDIS_URL"):
                with daphne(env, tmp_path / "daphne-b.log") as second:
                    yield first, second
            else:
                yield first, first


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


def test_sign_up_chat_watch_it_stream_reload_and_resume(servers, browser, tmp_path):
    base_url, other_url = servers
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    _sign_up(page, base_url)

    page.get_by_label("Persona").select_option(label="Captain Mara Voss")
    page.get_by_label("Model").select_option(label="Offline demo (simulated replies)")
    page.get_by_role("button", name="New chat").click()
    page.wait_for_url("**/c/*/")
    conversation_path = page.url.removeprefix(base_url)
    assert page.get_by_text("Simulated", exact=True).is_visible()
    socket_open(page)

    # A second tab, served by the other process when there are two.
    watcher = context.new_page()
    watcher.goto(f"{other_url}{conversation_path}")
    watcher.wait_for_timeout(300)

    page.bring_to_front()  # background tabs throttle the polling that times this
    page.get_by_label("Message", exact=True).fill("Captain, what's our heading?")
    sent_at = time.monotonic()
    page.get_by_label("Message", exact=True).press("Enter")
    page.wait_for_function(
        "document.querySelector('.status-streaming .thinking-body')?.textContent.length > 0"
    )
    first_token_ms = (time.monotonic() - sent_at) * 1000
    page.wait_for_function(
        f"(() => {{ const el = document.querySelector('{STREAMING_TEXT}'); "
        "return el && el.textContent.length > 0; })"
    )
    first_answer_ms = (time.monotonic() - sent_at) * 1000
    print(
        f"\nSend → first token on the page (reasoning): {first_token_ms:.0f} ms; "
        f"first answer token: {first_answer_ms:.0f} ms (simulator at 30 tokens/s)"
    )
    assert page.get_by_role("button", name="Stop").is_visible()
    assert (
        page.locator(".status-streaming .thinking-body").text_content().startswith("The user wrote")
    )

    # The second tab follows the stream live.
    watcher.wait_for_function(
        f"(() => {{ const el = document.querySelector('{STREAMING_TEXT}'); "
        "return el && el.textContent.length > 0; })"
    )

    # Reload mid-stream: stored text plus the live tail, no gap, no duplicate.
    page.bring_to_front()
    page.wait_for_function(f"document.querySelector('{STREAMING_TEXT}').textContent.length > 60")
    page.reload()
    page.wait_for_function(
        f"(() => {{ const el = document.querySelector('{STREAMING_TEXT}'); "
        "return el && el.textContent.includes('What this reply shows off'); })"
    )
    resumed = page.locator(STREAMING_TEXT).text_content()
    assert resumed.count("You said:") == 1

    page.wait_for_selector(".message.assistant.status-complete pre code", timeout=30_000)
    reply = page.locator(".message.assistant").last.text_content()
    assert reply.count("You said:") == 1 and reply.count("Received:") == 1
    watcher.wait_for_selector(".message.assistant.status-complete pre code", timeout=30_000)
    page.screenshot(path=str(tmp_path / "finished.png"))

    page.reload()
    final = page.locator(".message.assistant").last
    assert "Captain, what's our heading?" in final.text_content()
    assert final.locator("pre code").count() == 1


def test_stop_keeps_the_partial_reply_in_the_page(servers, browser):
    base_url, _ = servers
    page = browser.new_page(bypass_csp=True)
    _sign_up(page, base_url)
    page.get_by_role("button", name="New chat").click()
    page.wait_for_url("**/c/*/")
    page.wait_for_timeout(300)
    page.get_by_label("Message", exact=True).fill("Tell me a long story")
    page.get_by_role("button", name="Send").click()
    page.wait_for_function(f"document.querySelector('{STREAMING_TEXT}')?.textContent.length > 20")
    page.get_by_role("button", name="Stop").click()
    stopped = page.locator(".message.assistant.status-stopped")
    stopped.wait_for(timeout=5_000)
    assert "stopped" in stopped.text_content()
    assert "Received:" not in stopped.text_content()
    assert not page.get_by_role("button", name="Stop").is_visible()
    page.reload()
    assert page.locator(".message.assistant.status-stopped .markdown").text_content().strip()


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory):
    """One server and one signed-in browser page shared by the per-API tests."""
    from playwright.sync_api import sync_playwright

    tmp = tmp_path_factory.mktemp("per-api")
    with e2e_database(tmp) as database_url:
        env = server_env(database_url)
        migrate(env)
        with daphne(env, tmp / "daphne.log") as base_url, sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
            )
            page = chromium.new_page(bypass_csp=True)
            _sign_up(page, base_url)
            yield base_url, page
            chromium.close()


API_MODELS = {
    "minimax-openai": "Offline demo (simulated replies)",
    "minimax-anthropic": (
        "Offline demo: MiniMax-M2.7 via MiniMax (Anthropic-compatible) (simulated)"
    ),
    "cloudflare": "Offline demo: minimax/m2.7 via Cloudflare Workers AI (simulated)",
    "dashscope": "Offline demo: MiniMax-M2.5 via Alibaba DashScope (simulated)",
    "cloudsway": "Offline demo: MiniMax-M2.7 via Cloudsway MaaS (simulated)",
}


@pytest.mark.parametrize("api", list(API_MODELS))
def test_each_api_streams_an_answer_with_its_thinking_block(demo_site, api):
    base_url, page = demo_site
    page.goto(f"{base_url}/")
    page.get_by_label("Model").select_option(label=API_MODELS[api])
    page.get_by_role("button", name="New chat").click()
    page.wait_for_url("**/c/*/")
    page.wait_for_timeout(300)
    page.get_by_label("Message", exact=True).fill(f"Hello from the {api} test")
    page.get_by_role("button", name="Send").click()
    # Thinking streams live, then the answer, before the reply is finished.
    page.wait_for_function(
        "document.querySelector('.status-streaming .thinking-body')?.textContent.length > 0"
    )
    page.wait_for_function(f"document.querySelector('{STREAMING_TEXT}')?.textContent.length > 0")
    done = page.locator(".message.assistant.status-complete").last
    done.locator("pre code").wait_for(timeout=30_000)
    assert f"Hello from the {api} test" in done.text_content()
    thinking = done.locator("details.thinking")
    assert thinking.locator("summary").text_content() == "Thinking"
    thinking.locator("summary").click()
    assert thinking.locator(".thinking-body").text_content().startswith("The user wrote")


def test_the_sent_message_and_its_reply_show_at_once_and_only_once(demo_site):
    """The tab shows the message and the reply's first words while the server stores
    the send, then the stored pair in their place: never two copies, never a gap."""
    base_url, page = demo_site
    page.goto(f"{base_url}/")
    page.get_by_label("Model").select_option(label="Offline demo (simulated replies)")
    page.get_by_role("button", name="New chat").click()
    page.wait_for_url("**/c/*/")
    socket_open(page)
    page.evaluate(WATCH_EXCHANGE, "Which way is north?")
    page.get_by_label("Message", exact=True).fill("Which way is north?")
    page.get_by_label("Message", exact=True).press("Enter")
    done = page.locator(".message.assistant.status-complete").last
    done.locator("pre code").wait_for(timeout=30_000)
    seen = page.evaluate("window.seen")
    assert seen["provisional"] > 0, "shown before it was stored"
    assert seen["composerWhenShown"] == "", "the composer empties once the message shows"
    assert seen["maxMessages"] == 1 and seen["maxReplies"] == 1, seen
    assert page.locator(".provisional, .awaiting-swap").count() == 0
    assert page.locator(".message.user").count() == 1
    stored_id = done.get_attribute("id")
    page.reload()  # what the tab ended with is what was stored
    assert page.locator(f"#{stored_id}").text_content() == done.text_content()


def test_an_out_of_range_parameter_is_refused_in_the_page_with_the_limit(demo_site):
    base_url, page = demo_site
    page.goto(f"{base_url}/")
    page.get_by_label("Model").select_option(label="Offline demo (simulated replies)")
    page.get_by_role("button", name="New chat").click()
    page.wait_for_url("**/c/*/")
    page.get_by_text("Parameters", exact=True).click()
    page.get_by_label("Temperature").fill("1.4")
    page.get_by_role("button", name="Save parameters").click()
    error = page.locator("#conversation-settings [role=alert]")
    error.wait_for()
    assert "Temperature must be 0 < value ≤ 1" in error.text_content()
    page.get_by_label("Temperature").fill("0.7")
    page.get_by_role("button", name="Save parameters").click()
    page.get_by_role("status").filter(has_text="Saved.").wait_for()
    page.reload()
    assert page.get_by_label("Temperature").input_value() == "0.7"


def test_the_composer_keeps_refused_text_and_shift_enter_adds_a_line(demo_site):
    base_url, page = demo_site
    page.goto(f"{base_url}/")
    page.get_by_label("Model").select_option(
        label="Offline demo: M2-her via MiniMax (OpenAI-compatible) (simulated)"
    )
    page.get_by_role("button", name="New chat").click()
    page.wait_for_url("**/c/*/")
    page.wait_for_timeout(300)
    composer = page.get_by_label("Message", exact=True)

    # Too long for M2-her's 2,048-token window: refused, and the text is not lost.
    too_long = "word " * 3000
    composer.fill(too_long)
    composer.press("Enter")
    error = page.locator("#composer-error")
    page.wait_for_function(
        "document.querySelector('#composer-error').textContent.includes('context')"
    )
    assert "2,048 tokens of context" in error.text_content()
    assert composer.input_value() == too_long
    assert page.locator(".message.user").count() == 0

    # Shift+Enter adds a line; Enter sends both lines; the title follows live.
    composer.fill("First line")
    composer.press("Shift+Enter")
    composer.type("second line")
    assert composer.input_value() == "First line\nsecond line"
    assert page.locator(".message.user").count() == 0
    composer.press("Enter")
    sent = page.locator(".message.user").last
    sent.wait_for()
    assert sent.locator(".user-text").text_content() == "First line\nsecond line"
    # Cleared once the message shows (provisionally, or stored), not on send.
    page.wait_for_function("document.querySelector('#composer-input').value === ''")
    assert error.text_content() == ""
    page.locator("#chat-title", has_text="First line second line").wait_for()
    assert page.locator("[aria-current=page]").text_content().strip() == "First line second line"
    page.locator(".message.assistant.status-complete pre code").last.wait_for(timeout=30_000)


def test_a_message_sent_while_the_server_restarts_is_kept_and_delivered_once(demo_site, tmp_path):
    # Playwright is already running for demo_site: borrow its browser, not a second one.
    chromium = demo_site[1].context.browser
    with e2e_database(tmp_path) as database_url:
        env = server_env(database_url)
        migrate(env)
        port = free_port()
        page = chromium.new_page(bypass_csp=True)
        with daphne(env, tmp_path / "before.log", port=port) as base_url:
            _sign_up(page, base_url)
            page.get_by_label("Model").select_option(label="Offline demo (simulated replies)")
            page.get_by_role("button", name="New chat").click()
            page.wait_for_url("**/c/*/")
            page.wait_for_timeout(300)
        # The server is gone: the message waits in the composer, not acknowledged.
        composer = page.get_by_label("Message", exact=True)
        composer.fill("Sent during the restart")
        composer.press("Enter")
        page.wait_for_timeout(500)
        assert composer.input_value() == "Sent during the restart"
        assert page.locator(".message.user").count() == 0
        with daphne(env, tmp_path / "after.log", port=port):
            # Reconnected: sent (once), acknowledged, and only then cleared.
            page.wait_for_function(
                "document.querySelector('#composer-input').value === ''", timeout=40_000
            )
            page.locator(".message.assistant.status-complete pre code").last.wait_for(
                timeout=60_000
            )
            page.reload()
            assert page.locator(".message.user").count() == 1
            assert "Sent during the restart" in page.locator(".message.user").text_content()


def test_the_ui_and_the_admin_work_under_the_content_security_policy(demo_site):
    base_url, signed_in = demo_site
    page = signed_in.context.browser.new_page()  # the policy applies here
    violations: list[str] = []

    def watch(message) -> None:  # type: ignore[no-untyped-def]
        text = message.text
        if "Content Security Policy" in text or "Refused to" in text:
            violations.append(text)

    page.on("console", watch)
    page.goto(f"{base_url}/login/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("a-long-passphrase-9")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base_url}/")
    page.get_by_label("Model").select_option(label="Offline demo (simulated replies)")
    page.get_by_role("button", name="New chat").click()
    page.wait_for_url("**/c/*/")
    page.wait_for_timeout(500)
    page.get_by_label("Message", exact=True).fill(
        "Show me an image: ![x](https://example.com/x.png)"
    )
    page.get_by_role("button", name="Send").click()
    page.locator(".message.assistant.status-complete pre code").last.wait_for(timeout=30_000)
    page.get_by_text("Parameters", exact=True).click()
    page.get_by_role("button", name="Save parameters").click()
    page.get_by_role("status").filter(has_text="Saved.").wait_for()
    for path in (
        "/admin/",
        "/admin/chat/personapreset/",
        "/admin/chat/personapreset/add/",
        "/admin/providers/providerconnection/add/",
        "/admin/chat/user/",
    ):
        page.goto(f"{base_url}{path}")
        page.wait_for_load_state("networkidle")
    page.close()
    assert violations == []
