"""A PostgreSQL restart mid-reply loses nothing."""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.conftest import assert_clean_logs, request_for, upstream_text
from tests.streams import has_delta

pytestmark = pytest.mark.faults


async def test_a_short_postgres_restart_mid_reply_loses_nothing(site_factory, postgres, simulator):
    site = site_factory(DEMO_TOKENS_PER_SECOND="40")
    server, conversation, socket = await site.one_chat()
    reply_id = 0
    for attempt in range(3):
        simulator.queue_fault("length=200")
        await socket.send(f"blip {attempt}")
        reply_id = await socket.reply_id(after=reply_id)
        await socket.wait_for(has_delta)
        await asyncio.sleep(1.2)  # a partial flush is due while the server is down
        await asyncio.to_thread(postgres.restart, 0.2)
        final = await socket.final(reply_id, within=40)
        stored = site.row(reply_id)
        assert stored["status"] == "complete", stored
        assert "status-complete" in final
        record = request_for(simulator, f"blip {attempt}")
        assert stored["content"].strip() == upstream_text(record).strip()
    assert site.streaming_rows() == 0
    assert_clean_logs(site)
    assert "Could not store the end of reply" not in site.logs()
