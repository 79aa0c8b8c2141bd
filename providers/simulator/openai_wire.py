"""MiniMax's OpenAI-compatible chat completions, as the simulator speaks them."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from providers.simulator.replies import Reply, compose, tokens

if TYPE_CHECKING:
    from providers.simulator.server import Exchange

_MINIMAX_ERRORS = {
    400: ("bad_request_error", 2013, "invalid params"),
    401: ("authorized_error", 1004, "login fail: Please carry the API secret key"),
    402: ("insufficient_balance_error", 1008, "insufficient balance"),
    404: ("bad_request_error", 2013, "unknown model"),
    422: ("unprocessable_entity_error", 2013, "invalid params"),
    429: ("rate_limit_error", 1002, "rate limit exceeded(RPM)"),
    500: ("server_error", 1013, "internal service error"),
    529: ("overloaded_error", 1033, "system overloaded"),
}


def error_body(status: int) -> dict[str, Any]:
    kind, code, message = _MINIMAX_ERRORS.get(status, ("server_error", 1000, "unknown error"))
    return {
        "type": "error",
        "error": {"type": kind, "message": f"{message} ({code})", "http_code": str(status)},
        "request_id": uuid.uuid4().hex,
    }


def _chunk(completion_id: str, model: str, delta: dict[str, Any], finish: str | None = None) -> str:
    payload = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


async def chat_completions(exchange: Exchange) -> None:
    body = exchange.record.body if isinstance(exchange.record.body, dict) else {}
    directives = exchange.directives
    status = directives.fault_int("status")
    if status:
        headers = {}
        if "retry-after" in directives.faults:
            headers["Retry-After"] = directives.faults["retry-after"]
        await exchange.respond_json(status, error_body(status), headers)
        return
    base_resp = directives.fault_int("base-resp")
    if base_resp:
        await exchange.respond_json(
            200,
            {
                "id": "",
                "choices": None,
                "base_resp": {"status_code": base_resp, "status_msg": "error"},
            },
        )
        return
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    reply = compose(messages, length=directives.length)
    model = str(body.get("model", "MiniMax-M2.7"))
    if not body.get("stream"):
        await exchange.respond_json(
            200, _completion(model, reply, bool(body.get("reasoning_split")))
        )
        return
    await _stream(exchange, model, reply, split=bool(body.get("reasoning_split")))


def _completion(model: str, reply: Reply, split: bool) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "name": "MiniMax AI"}
    if split:
        message["content"] = reply.answer
        message["reasoning_content"] = reply.reasoning
        message["reasoning_details"] = [
            {
                "type": "reasoning.text",
                "id": "reasoning-text-1",
                "format": "MiniMax-response-v1",
                "index": 0,
                "text": reply.reasoning,
            }
        ]
    else:
        message["content"] = f"<think>\n{reply.reasoning}\n</think>\n\n{reply.answer}"
    return {
        "id": uuid.uuid4().hex,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": _usage(reply),
        "base_resp": {"status_code": 0, "status_msg": ""},
    }


def _usage(reply: Reply) -> dict[str, Any]:
    reasoning = len(tokens(reply.reasoning))
    completion = reasoning + len(tokens(reply.answer))
    return {
        "prompt_tokens": 120,
        "completion_tokens": completion,
        "total_tokens": 120 + completion,
        "completion_tokens_details": {"reasoning_tokens": reasoning},
        "prompt_tokens_details": {"cached_tokens": 0},
    }


async def _stream(exchange: Exchange, model: str, reply: Reply, *, split: bool) -> None:
    faults = exchange.directives
    break_after = faults.fault_int("break-after")
    silence_after = faults.fault_int("silence-after")
    malformed_after = faults.fault_int("malformed-after")
    completion_id = uuid.uuid4().hex
    await exchange.start_stream()
    await exchange.send(_chunk(completion_id, model, {"role": "assistant", "content": ""}))

    pieces: list[tuple[str, str]] = []
    if split:
        pieces += [("reasoning", t) for t in tokens(reply.reasoning)]
        pieces += [("text", t) for t in tokens(reply.answer)]
    else:
        pieces += [("text", t) for t in tokens(f"<think>\n{reply.reasoning}\n</think>\n\n")]
        pieces += [("text", t) for t in tokens(reply.answer)]
    for count, (kind, piece) in enumerate(pieces):
        if count == break_after:
            return  # the connection drops mid-reply
        if count == silence_after:
            await exchange.disconnected.wait()
            return
        if count == malformed_after:
            await exchange.send('data: {"id": "broken", "choices": [{"delta": {"content": \n\n')
        await exchange.pause()
        if kind == "reasoning":
            delta = {
                "reasoning_details": [
                    {
                        "type": "reasoning.text",
                        "id": "reasoning-text-1",
                        "format": "MiniMax-response-v1",
                        "index": 0,
                        "text": piece,
                    }
                ]
            }
        else:
            delta = {"content": piece}
        await exchange.send(_chunk(completion_id, model, delta))
    await exchange.send(_chunk(completion_id, model, {"content": ""}, finish="stop"))
    usage_frame = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [],
        "usage": _usage(reply),
    }
    await exchange.send(f"data: {json.dumps(usage_frame)}\n\n")
    await exchange.send("data: [DONE]\n\n")
    await asyncio.sleep(0)
