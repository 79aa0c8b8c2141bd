"""The single-process channel layer: Channels' semantics, without its per-message cost."""

from __future__ import annotations

import pytest
from channels.exceptions import ChannelFull

from chat.layers import InMemoryChannelLayer


async def test_each_member_of_a_group_gets_every_message_in_order_as_its_own_copy():
    layer = InMemoryChannelLayer()
    first, second = await layer.new_channel(), await layer.new_channel()
    for channel in (first, second):
        await layer.group_add("conversation-1", channel)
    for index in range(3):
        message = {"type": "chat.frame", "html": f"<p>{index}</p>", "ends": [0, index]}
        await layer.group_send("conversation-1", message)
    got = [[await layer.receive(channel) for _ in range(3)] for channel in (first, second)]
    assert (
        [m["html"] for m in got[0]]
        == ["<p>0</p>", "<p>1</p>", "<p>2</p>"]
        == [m["html"] for m in got[1]]
    )
    got[0][2]["ends"].append(99)  # one receiver changing its copy changes nobody else's
    assert got[1][2]["ends"] == [0, 2]


async def test_a_full_channel_misses_group_messages_but_a_direct_send_says_so():
    layer = InMemoryChannelLayer(capacity=2)
    slow, fast = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("g", slow)
    await layer.group_add("g", fast)
    for index in range(2):
        await layer.group_send("g", {"type": "x", "n": index})
    await layer.receive(fast)
    await layer.group_send("g", {"type": "x", "n": 2})  # slow is full: it misses this one
    assert [(await layer.receive(slow))["n"] for _ in range(2)] == [0, 1]
    assert [(await layer.receive(fast))["n"] for _ in range(2)] == [1, 2]
    await layer.send(slow, {"type": "x"})
    await layer.send(slow, {"type": "x"})
    with pytest.raises(ChannelFull):
        await layer.send(slow, {"type": "x"})
