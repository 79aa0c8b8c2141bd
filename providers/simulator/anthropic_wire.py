"""MiniMax's Anthropic-compatible Messages API, as the simulator speaks it.

Thinking blocks carry a signature (an HMAC of the thinking text). When a request sends
an assistant turn back, every thinking block's signature is checked, as the real API
does: a block altered by a single byte is refused with HTTP 400.

Quirks: ``ping`` (ping events between blocks), ``text-start-repeat`` (a text block's
start already carries text that the next ``text_delta`` repeats), ``stray-done``
(``data: [DONE]`` after ``message_stop``), ``event-mismatch`` (``event:`` lines that do
not match the JSON ``type``: clients must dispatch on the JSON).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import TYPE_CHECKING, Any

from providers.simulator.pacing import paced
from providers.simulator.replies import Reply, compose, limited, tokens

if TYPE_CHECKING:
    from providers.simulator.server import Exchange

_SIGNING_KEY = b"parley-simulator-thinking"
_ERRORS = {
    400: ("invalid_request_error", 2013, "invalid params"),
    401: ("authentication_error", 1004, "login fail: Please carry the API secret key"),
    402: ("insufficient_balance_error", 1008, "insufficient balance"),
    429: ("rate_limit_error", 1002, "rate limit exceeded(RPM)"),
    500: ("api_error", 1013, "internal service error"),
    529: ("overloaded_error", 1033, "system overloaded"),
}


def sign(thinking: str) -> str:
    return hmac.new(_SIGNING_KEY, thinking.encode(), hashlib.sha256).hexdigest()


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    kind, code, text = _ERRORS.get(status, ("api_error", 1000, "unknown error"))
    return {
        "type": "error",
        "error": {"type": kind, "message": f"{message or text} ({code})"},
        "request_id": uuid.uuid4().hex,
    }


def _check_signatures(messages: list[Any]) -> tuple[int, str | None]:
    verified = 0
    for message in messages:
        if not isinstance(message, dict) or message.get("role") != "assistant":
            continue
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for block in content:
            if isinstance(block, dict) and block.get("type") == "thinking":
                if block.get("signature") != sign(str(block.get("thinking", ""))):
                    return verified, "thinking block signature does not match its content"
                verified += 1
    return verified, None


async def messages(exchange: Exchange) -> None:
    faults = exchange.directives
    status = faults.fault_int("status")
    if status:
        headers = (
            {"Retry-After": faults.faults["retry-after"]} if "retry-after" in faults.faults else {}
        )
        await exchange.respond_json(status, error_body(status), headers)
        return
    body = exchange.body
    history = body.get("messages") if isinstance(body.get("messages"), list) else []
    verified, problem = _check_signatures(history)
    if problem:
        await exchange.respond_json(400, error_body(400, problem))
        return
    system = body.get("system") if isinstance(body.get("system"), str) else ""
    note = f"{verified} signed thinking block(s) verified" if verified else ""
    reply = compose(history, system=system, length=faults.length, note=note)
    reply = limited(reply, faults.output_limit(body))
    model = str(body.get("model", "MiniMax-M2.7"))
    if not body.get("stream"):
        await exchange.respond_json(200, _message(model, reply))
        return
    await _stream(exchange, model, reply)


def _usage(reply: Reply) -> dict[str, int]:
    return {
        "input_tokens": 120,
        "output_tokens": len(tokens(reply.reasoning)) + len(tokens(reply.answer)),
    }


def _message(model: str, reply: Reply) -> dict[str, Any]:
    return {
        "id": uuid.uuid4().hex,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [
            {"type": "thinking", "thinking": reply.reasoning, "signature": sign(reply.reasoning)},
            {"type": "text", "text": reply.answer},
        ],
        "usage": _usage(reply),
        "stop_reason": "max_tokens" if reply.truncated else "end_turn",
        "base_resp": {"status_code": 0, "status_msg": ""},
    }


async def _stream(exchange: Exchange, model: str, reply: Reply) -> None:
    quirk = exchange.quirk

    async def event(payload: dict[str, Any]) -> None:
        name = "message" if quirk("event-mismatch") else payload["type"]
        await exchange.send(f"event: {name}\ndata: {json.dumps(payload, ensure_ascii=False)}\n\n")

    async def ping() -> None:
        if quirk("ping"):
            await event({"type": "ping"})

    await exchange.start_stream()
    await event(
        {
            "type": "message_start",
            "message": {
                "id": uuid.uuid4().hex,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "usage": {"input_tokens": 0, "output_tokens": 0},
            },
        }
    )
    await ping()
    await event(
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
        }
    )
    reasoning_tokens = tokens(reply.reasoning)
    answer_tokens = tokens(reply.answer)
    items = [("reasoning", t) for t in reasoning_tokens] + [("text", t) for t in answer_tokens]
    text_started = False
    async for kind, piece in paced(exchange, items):
        if kind == "reasoning":
            await event(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "thinking_delta", "thinking": piece},
                }
            )
            continue
        if not text_started:
            text_started = True
            await event(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "signature_delta", "signature": sign(reply.reasoning)},
                }
            )
            await event({"type": "content_block_stop", "index": 0})
            await ping()
            start_text = piece if quirk("text-start-repeat") else ""
            await event(
                {
                    "type": "content_block_start",
                    "index": 1,
                    "content_block": {"type": "text", "text": start_text},
                }
            )
        await event(
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "text_delta", "text": piece},
            }
        )
    if exchange.broken:
        return
    await event({"type": "content_block_stop", "index": 1})
    await ping()
    await event(
        {
            "type": "message_delta",
            "delta": {
                "stop_reason": "max_tokens" if reply.truncated else "end_turn",
                "stop_sequence": None,
            },
            "usage": _usage(reply),
        }
    )
    await event({"type": "message_stop"})
    if quirk("stray-done"):
        await exchange.send("data: [DONE]\n\n")
