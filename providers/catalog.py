"""The five upstream APIs and their models, as the seed documents describe them.

Pure data. A data migration copies it into the database, where admins may edit it.
"""

from __future__ import annotations

from dataclasses import dataclass

from providers.clients.types import ModelSpec, Range

MINIMAX_OPENAI = "minimax_openai"
MINIMAX_ANTHROPIC = "minimax_anthropic"
CLOUDFLARE = "cloudflare"
DASHSCOPE = "dashscope"
CLOUDSWAY = "cloudsway"


@dataclass(frozen=True, slots=True)
class ApiKind:
    key: str
    label: str
    #: Region presets: (label, base URL).
    regions: tuple[tuple[str, str], ...]


API_KINDS: dict[str, ApiKind] = {
    MINIMAX_OPENAI: ApiKind(
        MINIMAX_OPENAI,
        "MiniMax (OpenAI-compatible)",
        (
            ("International", "https://api.minimax.io/v1"),
            ("Mainland China", "https://api.minimaxi.com/v1"),
        ),
    ),
    MINIMAX_ANTHROPIC: ApiKind(
        MINIMAX_ANTHROPIC,
        "MiniMax (Anthropic-compatible)",
        (
            ("International", "https://api.minimax.io/anthropic"),
            ("Mainland China", "https://api.minimaxi.com/anthropic"),
        ),
    ),
    CLOUDFLARE: ApiKind(
        CLOUDFLARE,
        "Cloudflare Workers AI",
        (("Cloudflare API", "https://api.cloudflare.com/client/v4"),),
    ),
    DASHSCOPE: ApiKind(
        DASHSCOPE,
        "Alibaba DashScope",
        (
            ("Mainland China", "https://dashscope.aliyuncs.com/api/v1"),
            ("International", "https://dashscope-intl.aliyuncs.com/api/v1"),
        ),
    ),
    CLOUDSWAY: ApiKind(
        CLOUDSWAY,
        "Cloudsway MaaS",
        (("Cloudsway", "https://genaiapi.cloudsway.net/v1/ai"),),
    ),
}

_ZERO_TO_ONE = Range(0.0, 1.0, min_exclusive=True, default=1.0)
_TOP_P = Range(0.0, 1.0, min_exclusive=True, default=0.95)


def _m2(name: str, **overrides: object) -> ModelSpec:
    spec = {
        "name": name,
        "context_window": 204_800,
        "max_output_tokens": 204_800,
        "default_output_tokens": 8_192,
        "temperature": _ZERO_TO_ONE,
        "top_p": _TOP_P,
        "reasoning": True,
        "tools": True,
    }
    spec.update(overrides)
    return ModelSpec(**spec)  # type: ignore[arg-type]


def _dashscope_abab(name: str, *, window: int, temperature: float) -> ModelSpec:
    return ModelSpec(
        name=name,
        context_window=window,
        max_output_tokens=window,
        # DashScope's own default of 256 cuts answers short: always send a real budget.
        default_output_tokens=2_048,
        temperature=Range(0.0, 1.0, min_exclusive=True, default=temperature),
        top_p=_TOP_P,
        reasoning=False,
        tools=True,
    )


CATALOG: dict[str, tuple[ModelSpec, ...]] = {
    MINIMAX_OPENAI: (
        _m2("MiniMax-M2.7", extra_roles=True),
        _m2("MiniMax-M2.7-highspeed", extra_roles=True),
        _m2("MiniMax-M2.5", extra_roles=True),
        _m2("MiniMax-M2.5-highspeed", extra_roles=True),
        _m2("MiniMax-M2.1", extra_roles=True),
        ModelSpec(
            name="M2-her",
            context_window=2_048,
            max_output_tokens=2_048,
            default_output_tokens=512,
            temperature=_ZERO_TO_ONE,
            top_p=_TOP_P,
            reasoning=False,
            tools=False,
            extra_roles=True,
        ),
    ),
    MINIMAX_ANTHROPIC: (
        # The Messages API ignores stop_sequences: refuse them rather than pretend.
        _m2("MiniMax-M2.7", max_stop=0, tool_choices=("none", "auto", "any", "tool")),
        _m2("MiniMax-M2.7-highspeed", max_stop=0, tool_choices=("none", "auto", "any", "tool")),
        _m2("MiniMax-M2.5", max_stop=0, tool_choices=("none", "auto", "any", "tool")),
        _m2("MiniMax-M2.1", max_stop=0, tool_choices=("none", "auto", "any", "tool")),
    ),
    CLOUDFLARE: (
        ModelSpec(
            name="minimax/m2.7",
            context_window=128_000,
            max_output_tokens=128_000,
            default_output_tokens=8_192,
            temperature=Range(0.0, 1.0, default=1.0),
            top_p=Range(0.0, 1.0, default=0.95),
            max_stop=0,
            images=True,
        ),
    ),
    DASHSCOPE: (
        _dashscope_abab("abab6.5s-chat", window=245_760, temperature=0.1),
        _dashscope_abab("abab6.5t-chat", window=8_192, temperature=0.9),
        _dashscope_abab("abab6.5g-chat", window=8_192, temperature=0.9),
        _m2("MiniMax-M2.5"),
        _m2("MiniMax/MiniMax-M2.1"),
    ),
    CLOUDSWAY: tuple(
        _m2(
            name,
            max_output_tokens=2_048,
            default_output_tokens=2_048,
            extra_roles=True,
            tool_choices=("none", "auto", "required"),
        )
        for name in (
            "MiniMax-M2.5",
            "MiniMax-M2.5-highspeed",
            "MiniMax-M2.7",
            "MiniMax-M2.7-highspeed",
        )
    ),
}


def default_spec(kind: str, model: str) -> ModelSpec | None:
    return next((spec for spec in CATALOG.get(kind, ()) if spec.name == model), None)
