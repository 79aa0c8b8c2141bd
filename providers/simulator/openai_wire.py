"""Chat completions as MiniMax, Cloudsway and Workers AI send them.

Quirks (``x-simulator-quirks``), from PROTOCOLS.md part A and the Workers AI notes:

- ``empty-role``: chunks with ``"role": ""``, empty ``reasoning_content`` and zero usage
  before the end;
- ``double-finish``: two finish chunks, the first carrying ``"\\n<think>\\n"``;
- ``no-done``: no ``[DONE]``, the stream just ends;
- ``split-think``: reasoning inline as ``<think>…</think>`` with tags split across deltas;
- ``cumulative-details``: ``reasoning_details[].text`` as cumulative snapshots;
- ``final-completion``: a last frame that is a whole ``chat.completion`` repeating the text;
- ``never-ends``: the stream stays open after the finish chunk;
- Workers AI: ``padding`` (a ``p`` field), ``incremental-usage`` (per-chunk usage, then a
  native ``{"response": "", "usage": …}`` frame with the cumulative total).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from providers.simulator.pacing import paced, pieces
from providers.simulator.replies import Reply, compose, limited, tokens

if TYPE_CHECKING:
    from providers.simulator.server import Exchange

_MINIMAX_ERRORS: dict[int, tuple[str, int | None, str]] = {
    400: ("bad_request_error", 2013, "invalid params"),
    401: ("authorized_error", 1004, "login fail: Please carry the API secret key"),
    402: ("insufficient_balance_error", 1008, "insufficient balance"),
    403: ("permission_error", None, "IP address not in allow list"),
    404: ("not_found_error", None, "model not found"),
    409: ("conflict_error", None, "conflict"),
    422: ("unprocessable_entity_error", 2013, "invalid params"),
    429: ("rate_limit_error", 1002, "rate limit exceeded(RPM)"),
    500: ("server_error", 1013, "internal service error"),
    503: ("service_unavailable_error", None, "service unavailable"),
    504: ("timeout_error", None, "gateway timeout"),
    529: ("overloaded_error", 1033, "system overloaded"),
}
_CLOUDFLARE_ERRORS = {
    400: (5004, "Invalid data"),
    401: (10000, "Authentication error"),
    403: (10000, "Authentication error"),
    404: (5007, "No such model"),
    408: (3007, "Request timeout"),
    413: (3006, "Request too large"),
    429: (3040, "Out of capacity"),
    500: (3043, "Internal server error"),
}
CLOUDSWAY_MODEL = "MaaS_Minimax_M2.7_20260318"
_EXTRA_ROLES = ("user_system", "group", "sample_message_user", "sample_message_ai")


def minimax_error_body(status: int) -> dict[str, Any]:
    kind, code, message = _MINIMAX_ERRORS.get(status, ("server_error", 1000, "unknown error"))
    text = f"{message} ({code})" if code else message
    return {
        "type": "error",
        "error": {"type": kind, "message": text, "http_code": str(status)},
        "request_id": uuid.uuid4().hex,
    }


def cloudflare_envelope_error(code: int, message: str) -> dict[str, Any]:
    return {
        "result": None,
        "success": False,
        "errors": [{"code": code, "message": message}],
        "messages": [],
    }


async def chat_completions(exchange: Exchange) -> None:
    """MiniMax's own API, or Cloudsway's when the path says so."""
    cloudsway = "/cloudsway/" in exchange.record.path or "/v1/ai/" in exchange.record.path
    body = exchange.body
    if await _refuse(exchange, cloudflare=False):
        return
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    if exchange.directives.faults.get("her-500") is not None and any(
        m.get("role") in _EXTRA_ROLES for m in messages if isinstance(m, dict)
    ):
        # MiniMax-AI/MiniMax-M2 issue #126: M2-her answers 500 to the role-play roles.
        await exchange.respond_json(500, minimax_error_body(500))
        return
    model = CLOUDSWAY_MODEL if cloudsway else str(body.get("model", "MiniMax-M2.7"))
    await _answer(
        exchange, messages, model, split=bool(body.get("reasoning_split")), cloudsway=cloudsway
    )


async def cloudflare_chat(exchange: Exchange) -> None:
    """Workers AI's OpenAI-compatible endpoint: the bare chat.completion shape."""
    if await _refuse(exchange, cloudflare=True):
        return
    body = exchange.body
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    await _answer(exchange, messages, "minimax/m2.7", split=False, cloudflare=True)


async def cloudflare_run(exchange: Exchange) -> None:
    """Workers AI's ``/ai/run``: results wrapped in the v4 envelope."""
    if await _refuse(exchange, cloudflare=True):
        return
    body = exchange.body
    model_input = body.get("input") if isinstance(body.get("input"), dict) else body
    messages = model_input.get("messages") if isinstance(model_input.get("messages"), list) else []
    reply = limited(
        compose(messages, length=exchange.directives.length), exchange.directives.output_limit(body)
    )
    if not model_input.get("stream"):
        result = _completion("minimax/m2.7", reply, split=False, with_details=True)
        await exchange.respond_json(
            200, {"result": result, "success": True, "errors": [], "messages": []}
        )
        return
    await _stream(exchange, "minimax/m2.7", reply, split=False, cloudflare=True)


async def _refuse(exchange: Exchange, *, cloudflare: bool) -> bool:
    """Answer with an error if a fault asks for one."""
    faults = exchange.directives
    status = faults.fault_int("status")
    headers = {}
    if "retry-after" in faults.faults:
        headers["Retry-After"] = faults.faults["retry-after"]
    cf_code = faults.fault_int("cf-code")
    if cloudflare and (status or cf_code):
        code, message = _CLOUDFLARE_ERRORS.get(status or 400, (5004, "Invalid data"))
        if cf_code:
            code, message = cf_code, "Request rejected"
        await exchange.respond_json(
            status or 200, cloudflare_envelope_error(code, message), headers
        )
        return True
    if status:
        await exchange.respond_json(status, minimax_error_body(status), headers)
        return True
    base_resp = faults.fault_int("base-resp")
    if base_resp:
        await exchange.respond_json(
            200,
            {
                "id": "",
                "choices": None,
                "base_resp": {"status_code": base_resp, "status_msg": "error"},
            },
        )
        return True
    return False


async def _answer(
    exchange: Exchange,
    messages: list[Any],
    model: str,
    *,
    split: bool,
    cloudsway: bool = False,
    cloudflare: bool = False,
) -> None:
    reply = compose(messages, length=exchange.directives.length)
    reply = limited(reply, exchange.directives.output_limit(exchange.body))
    if not exchange.body.get("stream"):
        await exchange.respond_json(
            200, _completion(model, reply, split=split, with_details=split, cloudsway=cloudsway)
        )
        return
    await _stream(exchange, model, reply, split=split, cloudsway=cloudsway, cloudflare=cloudflare)


def _completion(
    model: str, reply: Reply, *, split: bool, with_details: bool, cloudsway: bool = False
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "name": "MiniMax AI"}
    if split or with_details:
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
    finish = "length" if reply.truncated else "stop"
    choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish}
    if cloudsway:
        choice["native_finish_reason"] = finish
    return {
        "id": uuid.uuid4().hex,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": usage(reply),
        "input_sensitive": False,
        "output_sensitive": False,
        "base_resp": {"status_code": 0, "status_msg": ""},
    }


def usage(reply: Reply, prompt_tokens: int = 120) -> dict[str, Any]:
    reasoning = len(tokens(reply.reasoning))
    completion = reasoning + len(tokens(reply.answer))
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
        "completion_tokens_details": {"reasoning_tokens": reasoning},
        "prompt_tokens_details": {"cached_tokens": 0},
    }


class _Chunks:
    def __init__(
        self, exchange: Exchange, model: str, *, cloudsway: bool, cloudflare: bool
    ) -> None:
        self.exchange = exchange
        self.model = model
        self.id = uuid.uuid4().hex
        self.cloudsway = cloudsway
        self.cloudflare = cloudflare

    def frame(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
        if self.cloudsway and finish:
            choice["native_finish_reason"] = finish
        payload: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
            "choices": [choice],
            **extra,
        }
        if self.cloudflare and self.exchange.quirk("padding"):
            payload["p"] = "abcdefghijklmnop"[: len(self.id) % 16]
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


async def _stream(
    exchange: Exchange,
    model: str,
    reply: Reply,
    *,
    split: bool,
    cloudsway: bool = False,
    cloudflare: bool = False,
) -> None:
    chunks = _Chunks(exchange, model, cloudsway=cloudsway, cloudflare=cloudflare)
    quirk = exchange.quirk
    inline = not split or quirk("split-think")
    await exchange.start_stream()
    first: dict[str, Any] = {"role": "" if quirk("empty-role") else "assistant", "content": ""}
    if quirk("empty-role"):
        first["reasoning_content"] = ""
    zero = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    await exchange.send(chunks.frame(first, **({"usage": zero} if quirk("empty-role") else {})))

    items = pieces(reply)
    if inline:
        think = f"<think>\n{reply.reasoning}\n</think>\n\n"
        raw = [("text", t) for t in tokens(think)] + [("text", t) for t in tokens(reply.answer)]
        items = _split_tags(raw) if quirk("split-think") else raw
    reasoning_so_far = ""
    sent = 0
    async for kind, piece in paced(exchange, items):
        sent += 1
        if kind == "reasoning":
            reasoning_so_far += piece
            text = reasoning_so_far if quirk("cumulative-details") else piece
            delta: dict[str, Any] = {
                "reasoning_details": [
                    {
                        "type": "reasoning.text",
                        "id": "reasoning-text-1",
                        "format": "MiniMax-response-v1",
                        "index": 0,
                        "text": text,
                    }
                ]
            }
        else:
            delta = {"content": piece}
        extra: dict[str, Any] = {}
        if cloudflare and quirk("incremental-usage"):
            extra["usage"] = {"prompt_tokens": 0, "completion_tokens": 1, "total_tokens": 1}
        await exchange.send(chunks.frame(delta, **extra))
    if exchange.broken:
        return
    if quirk("double-finish"):
        await exchange.send(chunks.frame({"content": "\n<think>\n"}, finish="stop"))
    await exchange.send(
        chunks.frame({"content": ""}, finish="length" if reply.truncated else "stop")
    )
    if quirk("final-completion"):
        whole = _completion(model, reply, split=split, with_details=split, cloudsway=cloudsway)
        await exchange.send(f"data: {json.dumps(whole, ensure_ascii=False)}\n\n")
    if cloudflare and quirk("incremental-usage"):
        native = {"response": "", "usage": usage(reply)}
        await exchange.send(f"data: {json.dumps(native)}\n\n")
    else:
        tail = {
            "id": chunks.id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [],
            "usage": usage(reply),
        }
        await exchange.send(f"data: {json.dumps(tail)}\n\n")
    if quirk("never-ends"):
        await exchange.disconnected.wait()
        return
    if not quirk("no-done"):
        await exchange.send("data: [DONE]\n\n")


def _split_tags(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Cut every think tag in two, across consecutive deltas (``…</thi`` + ``nk>…``)."""
    text = "".join(piece for _, piece in items)
    out: list[tuple[str, str]] = []
    for piece in tokens(text.replace("<think>", "<thi\x00nk>").replace("</think>", "</thi\x00nk>")):
        for part in piece.split("\x00"):
            if part:
                out.append(("text", part))
    return out
