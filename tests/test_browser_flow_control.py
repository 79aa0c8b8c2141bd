"""Flow control in Chromium: the page acknowledges what it receives.

Its own module: it needs a server of its own (a small window), and Playwright's sync
API allows one instance at a time, so it cannot run beside another module's browser.
"""

from __future__ import annotations

import json

import pytest

from tests.live import browser_site, new_chat, queue_fault

pytestmark = [pytest.mark.browser, pytest.mark.integration]

DONE = ".message.assistant.status-complete"


def test_the_page_acknowledges_what_it_receives_so_a_long_reply_streams_past_the_window(
    tmp_path,
):
    """The server holds back frames a page has not acknowledged beyond the window: a page
    that acknowledges as it reads gets a long reply live, as deltas, to the end."""
    with browser_site(tmp_path, pace=2000, SOCKET_SEND_WINDOW="32768") as site:
        page = site.page
        received, acks, snapshots = [0], [], []

        def on_frame(payload):  # type: ignore[no-untyped-def]
            received[0] += len(payload)
            # The stored reply's articles or a snapshot; not the provisional exchange
            # shown before the send was stored.
            if 'data-status="streaming"' in payload and 'class="provisional"' not in payload:
                snapshots.append(payload)

        def on_socket(socket):  # type: ignore[no-untyped-def]
            socket.on("framereceived", on_frame)
            socket.on("framesent", lambda sent: acks.append(sent) if '"ack"' in sent else None)

        page.on("websocket", on_socket)
        new_chat(page, site.base_url)
        queue_fault(site.simulator_url, "length=8000,ignore-max-tokens")
        page.get_by_label("Message", exact=True).fill("Tell me everything")
        page.get_by_label("Message", exact=True).press("Enter")
        page.locator(DONE).last.wait_for(timeout=60_000)
        counts = [json.loads(ack)["received"] for ack in acks]
        assert received[0] > 32768 * 3, received[0]  # far past the window
        assert len(counts) >= 6 and counts == sorted(counts)
        assert counts[-1] <= received[0] < counts[-1] + 8192 * 2
        # Never held back: the reply's first frame was its only streaming snapshot.
        assert len(snapshots) == 1, len(snapshots)
