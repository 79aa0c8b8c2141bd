"""A reply larger than a websocket message may be still reaches every tab."""

from __future__ import annotations

import re

import pytest

from tests.streams import has_delta

pytestmark = pytest.mark.faults

PLACEHOLDER = re.compile(r'hx-get="(/c/\d+/m/\d+/)" hx-trigger="load"')


async def test_a_3_mb_reply_streams_and_catches_up_in_frames_under_1_mib(site_factory, simulator):
    # 3 MB arrive in under a second, faster than acknowledgements come back: a window
    # larger than that keeps this test about frame sizes (flow control, which would
    # catch the tabs up by snapshot and placeholder instead, has tests of its own).
    site = site_factory(REPLY_FRAME_INTERVAL="0.2", SOCKET_SEND_WINDOW="100000000")
    server, conversation, watching = await site.one_chat()
    simulator.queue_fault("length=600000,ignore-max-tokens,pace=40,chunk-chars=200000")
    await watching.send("Everything, please")
    reply_id = await watching.reply_id()
    await watching.wait_for(has_delta)
    # A tab that opens mid-reply gets the text so far in pieces, then the live tail.
    joining = await site.socket(server.url, conversation, drain=0)
    await watching.final(reply_id, within=60)
    await joining.final(reply_id, within=60)

    stored = site.row(reply_id)
    assert stored["status"] == "complete" and len(stored["content"]) > 3_000_000
    # The client enforced 1 MiB a message throughout: neither socket was closed.
    assert watching.closed_with is None and joining.closed_with is None
    streamed = watching.transcript.text(reply_id)
    assert stored["content"].startswith(streamed) and len(streamed) > 3_000_000
    assert stored["content"].startswith(joining.transcript.text(reply_id))
    assert len(joining.transcript.text(reply_id)) > 3_000_000

    # Reconnecting after the end: the finished reply is too big for one frame, so the
    # page loads it over HTTP.
    later = await site.socket(server.url, conversation, drain=0)
    frame = await later.wait_for(lambda f: f'id="m-{reply_id}"' in f)
    url = PLACEHOLDER.search(frame)[1]
    body = site.get(server.url, url)
    assert body.status_code == 200 and len(body.text) > 3_000_000
    assert "Some notes about Parley" in body.text
