"""Refuse a request that breaks a documented limit before it is sent. Never clamp."""

from __future__ import annotations

from providers.clients.errors import LimitExceededError
from providers.clients.types import ChatRequest, ModelSpec


def check_limits(request: ChatRequest, spec: ModelSpec, *, api: str) -> None:
    """Raise :class:`LimitExceededError` naming the first limit ``request`` breaks."""
    where = f"{spec.name} on {api}"
    if request.temperature is not None and request.temperature not in spec.temperature:
        raise LimitExceededError(
            f"Temperature must be {spec.temperature.describe()} for {where} "
            f"(got {request.temperature:g})."
        )
    if request.top_p is not None and request.top_p not in spec.top_p:
        raise LimitExceededError(
            f"Top-p must be {spec.top_p.describe()} for {where} (got {request.top_p:g})."
        )
    if request.max_output_tokens is not None:
        if request.max_output_tokens < 1:
            raise LimitExceededError("Max output tokens must be at least 1.")
        if request.max_output_tokens > spec.max_output_tokens:
            raise LimitExceededError(
                f"Max output tokens is at most {spec.max_output_tokens:,} for {where} "
                f"(got {request.max_output_tokens:,})."
            )
    if request.stop:
        if spec.max_stop == 0:
            raise LimitExceededError(f"{where} does not support stop sequences.")
        if len(request.stop) > spec.max_stop:
            raise LimitExceededError(
                f"At most {spec.max_stop} stop sequences are allowed for {where} "
                f"(got {len(request.stop)})."
            )
    if request.n != 1:
        raise LimitExceededError(f"{where} generates one answer per request (n = 1 only).")
    if request.tools and not spec.tools:
        raise LimitExceededError(f"{where} does not support tools.")
    if request.tool_choice is not None and request.tool_choice not in spec.tool_choices:
        allowed = ", ".join(f'"{choice}"' for choice in spec.tool_choices)
        raise LimitExceededError(f"tool_choice must be one of {allowed} for {where}.")
