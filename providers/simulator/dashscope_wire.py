"""Alibaba DashScope's native generation API, byte for byte as it streams.

Always: ``id:``/``event:``/``:HTTP_STATUS/200`` lines with no space after the colon, the
string ``"null"`` as ``finish_reason`` until the last event, cumulative usage in every
event, no ``[DONE]``. Without ``incremental_output: true`` (or with the ``full-output``
quirk) each event repeats the whole text so far, as DashScope does.

Faults: ``status=N`` (with DashScope's code for N), ``ds-code=Arrearage`` (a specific
code), ``stream-error=DataInspectionFailed`` (an ``event:error`` after a few tokens).
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from providers.simulator.pacing import paced, pieces
from providers.simulator.replies import compose, limited, tokens

if TYPE_CHECKING:
    from providers.simulator.server import Exchange

_CODES = {
    400: "InvalidParameter",
    401: "InvalidApiKey",
    403: "AccessDenied",
    404: "ModelNotFound",
    429: "Throttling.RateQuota",
    500: "InternalError",
}
_STATUS_OF = {
    "Arrearage": 400,
    "DataInspectionFailed": 400,
    "InvalidParameter": 400,
    "InvalidApiKey": 401,
    "AccessDenied": 403,
    "ModelNotFound": 404,
    "Throttling": 429,
    "Throttling.RateQuota": 429,
    "Throttling.AllocationQuota": 429,
    "InternalError": 500,
}


def error_body(code: str) -> dict[str, Any]:
    return {"request_id": uuid.uuid4().hex, "code": code, "message": f"{code}: simulated error"}


def _thinks(model: str) -> bool:
    return "minimax" in model.lower() and "abab" not in model.lower()


async def generation(exchange: Exchange) -> None:
    faults = exchange.directives
    status = faults.fault_int("status")
    code = faults.faults.get("ds-code")
    if status or code:
        code = code or _CODES.get(status or 400, "InternalError")
        status = status or _STATUS_OF.get(code, 400)
        headers = (
            {"Retry-After": faults.faults["retry-after"]} if "retry-after" in faults.faults else {}
        )
        await exchange.respond_json(status, error_body(code), headers)
        return
    body = exchange.body
    model = str(body.get("model", "abab6.5s-chat"))
    model_input = body.get("input") if isinstance(body.get("input"), dict) else {}
    parameters = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
    messages = model_input.get("messages") if isinstance(model_input.get("messages"), list) else []
    reply = limited(compose(messages, length=faults.length), faults.output_limit(body))
    reasoning = reply.reasoning if _thinks(model) else ""
    streaming = exchange.record.headers.get("x-dashscope-sse", "").lower() == "enable"
    request_id = uuid.uuid4().hex
    if not streaming:
        message: dict[str, Any] = {"role": "assistant", "content": reply.answer}
        if reasoning:
            message["reasoning_content"] = reasoning
        await exchange.respond_json(
            200,
            {
                "output": {
                    "choices": [
                        {
                            "finish_reason": "length" if reply.truncated else "stop",
                            "message": message,
                        }
                    ]
                },
                "usage": _usage(reasoning, reply.answer),
                "request_id": request_id,
            },
        )
        return
    incremental = parameters.get("incremental_output") is True and not exchange.quirk("full-output")
    error_after = None
    if "stream-error" in faults.faults:
        error_after = 5
    items = [i for i in pieces(reply) if i[0] == "text" or reasoning]
    await exchange.start_stream()
    text_so_far = ""
    reasoning_so_far = ""
    event_id = 0
    async for kind, piece in paced(
        exchange, items, malformed="id:0\nevent:result\ndata:{broken\n\n"
    ):
        event_id += 1
        if error_after is not None and event_id > error_after:
            error = faults.faults["stream-error"] or "DataInspectionFailed"
            status_code = _STATUS_OF.get(error, 400)
            await exchange.send(
                f"id:{event_id}\nevent:error\n:HTTP_STATUS/{status_code}\n"
                f"data:{json.dumps(error_body(error))}\n\n"
            )
            return
        message = {"role": "assistant", "content": ""}
        if kind == "reasoning":
            reasoning_so_far += piece
            message["reasoning_content"] = piece if incremental else reasoning_so_far
        else:
            text_so_far += piece
            message["content"] = piece if incremental else text_so_far
        await exchange.send(
            _event(
                event_id,
                message,
                "null",
                _usage(reasoning_so_far, text_so_far),
                request_id,
            )
        )
    if exchange.broken:
        return
    event_id += 1
    last = {"role": "assistant", "content": "" if incremental else text_so_far}
    await exchange.send(
        _event(
            event_id,
            last,
            "length" if reply.truncated else "stop",
            _usage(reasoning_so_far, text_so_far),
            request_id,
        )
    )


def _usage(reasoning: str, text: str) -> dict[str, Any]:
    output = len(tokens(reasoning)) + len(tokens(text))
    return {
        "input_tokens": 96,
        "output_tokens": output,
        "total_tokens": 96 + output,
        "output_tokens_details": {"reasoning_tokens": len(tokens(reasoning))},
    }


def _event(
    event_id: int, message: dict[str, Any], finish: str, usage: dict[str, Any], request_id: str
) -> str:
    payload = {
        "output": {"choices": [{"message": message, "finish_reason": finish}]},
        "usage": usage,
        "request_id": request_id,
    }
    return (
        f"id:{event_id}\nevent:result\n:HTTP_STATUS/200\n"
        f"data:{json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n"
    )
