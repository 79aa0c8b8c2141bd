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

It also times every callback the event loop runs (``asyncio.events.Handle._run``), named
by its coroutine for a task's step (with "(first step)" for a task's first), so the
benchmark can say what the loop was busy with before each stage.

A thread appends them to ``PARLEY_TRACE_DIR/marks-<pid>.jsonl`` every half second as
``[unix time, mark, client id]``, and the callbacks to ``loop-<pid>.jsonl`` as
``[unix time, seconds, name]``. Parsing each send twice and keeping the marks cost
the burst a little: traced runs show the shape, not the untraced figures.
"""

from __future__ import annotations

import asyncio
import importlib.abc
import importlib.util
import inspect
import json
import os
import sys
import threading
import time
from typing import Any

_DIR = os.environ.get("PARLEY_TRACE_DIR")
_marks: list[tuple[float, str, str]] = []
#: (unix time at the start, seconds, what ran) of every event-loop callback.
_ran: list[tuple[float, float, str]] = []


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
        if _ran:
            taken_ran = _ran[:]
            del _ran[: len(taken_ran)]
            with open(os.path.join(_DIR or ".", f"loop-{os.getpid()}.jsonl"), "a") as out:
                out.writelines(json.dumps(item) + "\n" for item in taken_ran)


def _what(callback: Any) -> str:
    """A callback's name; for a task's step, its coroutine's."""
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        name = getattr(coro, "__qualname__", type(coro).__name__)
        if inspect.iscoroutine(coro) and inspect.getcoroutinestate(coro) == "CORO_CREATED":
            return name + " (first step)"
        return name
    if isinstance(owner, asyncio.Future):
        return "future callback"
    inner = getattr(callback, "func", None)  # functools.partial
    if inner is not None:
        return _what(inner)
    return getattr(callback, "__qualname__", type(callback).__name__)


def _time_the_loop() -> None:
    """Time every callback the event loop runs (``Handle._run`` is Python in 3.11)."""
    handle = asyncio.events.Handle
    run = handle._run
    clock, wall = time.perf_counter, time.time

    def timed_run(self: Any) -> None:
        what = _what(self._callback)
        started, at = clock(), wall()
        run(self)
        _ran.append((at, clock() - started, what))

    handle._run = timed_run  # type: ignore[method-assign]


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
    _time_the_loop()


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
