"""Timestamps of each send's way through daphne, for ``relay --trace``.

Python imports this module at start in every process whose ``PYTHONPATH`` names this
folder; the relay benchmark puts it there for its daphne processes only, with
``PARLEY_TRACE_DIR`` set. Once Parley's ASGI application is imported it wraps, for each
send (keyed by its client id):

- ``onmsg``: autobahn handed daphne the websocket message;
- ``recv``: the consumer's ``receive`` got it;
- ``early``: its early request's task started (``EarlyStart._pull``);
- ``event``: the request's first text or reasoning reached the provisional reply;
- ``frame``: the first frame with words was built for the socket.

A thread appends them to ``PARLEY_TRACE_DIR/marks-<pid>.jsonl`` every half second as
``[unix time, mark, client id]``. Parsing each send twice and keeping the marks cost
the burst a little: traced runs show the shape, not the untraced figures.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import json
import os
import sys
import threading
import time
from typing import Any

_DIR = os.environ.get("PARLEY_TRACE_DIR")
_marks: list[tuple[float, str, str]] = []


def _mark(kind: str, key: str) -> None:
    _marks.append((time.time(), kind, key))


def _write_marks() -> None:
    path = os.path.join(_DIR or ".", f"marks-{os.getpid()}.jsonl")
    while True:
        time.sleep(0.5)
        if _marks:
            taken = _marks[:]
            del _marks[: len(taken)]
            with open(path, "a") as out:
                out.writelines(json.dumps(mark) + "\n" for mark in taken)


def _client_id(text: str | bytes) -> str | None:
    try:
        payload = json.loads(text)
    except ValueError:
        return None
    if isinstance(payload, dict) and payload.get("action") == "send":
        client_id = payload.get("client_id")
        return client_id if isinstance(client_id, str) else None
    return None


def _install() -> None:
    import daphne.ws_protocol

    import chat.actions.early
    import chat.consumers
    import chat.provisional

    protocol = daphne.ws_protocol.WebSocketProtocol
    on_message = protocol.onMessage

    def traced_on_message(self: Any, payload: bytes, isBinary: bool) -> Any:  # noqa: N803
        key = None if isBinary else _client_id(payload)
        if key:
            _mark("onmsg", key)
        return on_message(self, payload, isBinary)

    protocol.onMessage = traced_on_message

    consumer = chat.consumers.ConversationConsumer
    receive = consumer.receive

    async def traced_receive(self: Any, text_data: Any = None, bytes_data: Any = None) -> None:
        key = _client_id(text_data) if text_data else None
        if key:
            _mark("recv", key)
        await receive(self, text_data, bytes_data)

    consumer.receive = traced_receive  # type: ignore[method-assign]

    early = chat.actions.early.EarlyStart
    pull = early._pull

    async def traced_pull(self: Any) -> None:
        # The benchmark's client ids are its messages with dashes for spaces.
        _mark("early", self.text.replace(" ", "-"))
        await pull(self)

    early._pull = traced_pull  # type: ignore[method-assign]

    reply = chat.provisional.ProvisionalReply
    take, frame = reply._take, reply._frame

    def traced_take(self: Any, event: Any) -> None:
        if not getattr(self, "_traced_event", False):
            self._traced_event = True
            _mark("event", self.client_id)
        take(self, event)

    def traced_frame(self: Any) -> str:
        html = frame(self)
        if html and not getattr(self, "_traced_frame", False):
            self._traced_frame = True
            _mark("frame", self.client_id)
        return html

    reply._take = traced_take  # type: ignore[method-assign]
    reply._frame = traced_frame  # type: ignore[method-assign]


class _AfterAsgi(importlib.abc.MetaPathFinder):
    """Installs the wrappers once ``project.asgi`` (and so Django) is loaded."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != "project.asgi":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_then_install(module: Any) -> None:
            exec_module(module)
            _install()

        loader.exec_module = exec_then_install  # type: ignore[method-assign]
        return spec


if _DIR:
    threading.Thread(target=_write_marks, name="parley-trace", daemon=True).start()
    sys.meta_path.insert(0, _AfterAsgi())
