from __future__ import annotations

from providers.clients.cloudflare import CloudflareClient
from providers.clients.cloudsway import CloudswayClient
from providers.clients.dashscope import DashScopeClient
from providers.clients.minimax_anthropic import MiniMaxAnthropicClient
from providers.clients.minimax_openai import MiniMaxOpenAIClient
from providers.simulator import Simulator  # noqa: TC001 - for make_client's signature

API_KEY = "sk-test-should-never-leak-0123456789"


def make_client(
    sim: Simulator, api: str, *, fault: str = "", quirks: str = "", pace=None, **kwargs
):
    """A real client for ``api`` pointed at the simulator, with directives as headers."""
    headers = {}
    if fault:
        headers["x-simulator-fault"] = fault
    if quirks:
        headers["x-simulator-quirks"] = quirks
    if pace:
        headers["x-simulator-pace"] = str(pace)
    common = {"extra_headers": headers, **kwargs}
    url = sim.base_url
    if api == "minimax":
        return MiniMaxOpenAIClient(
            base_url=f"{url}/minimax/v1", api_key=API_KEY, finish_grace=0.3, **common
        )
    if api == "anthropic":
        return MiniMaxAnthropicClient(
            base_url=f"{url}/minimax/anthropic", api_key=API_KEY, **common
        )
    if api in ("cloudflare", "cloudflare-openai"):
        return CloudflareClient(
            api_token=API_KEY,
            account_id="acct-1",
            base_url=f"{url}/cloudflare/client/v4",
            style="openai" if api == "cloudflare-openai" else "run",
            finish_grace=0.3,
            **common,
        )
    if api == "dashscope":
        return DashScopeClient(api_key=API_KEY, base_url=f"{url}/dashscope/api/v1", **common)
    if api == "cloudsway":
        return CloudswayClient(
            api_key=API_KEY,
            base_url=f"{url}/cloudsway/v1/ai",
            endpoint_path="ep-42",
            finish_grace=0.3,
            **common,
        )
    raise ValueError(api)


MODELS = {
    "minimax": "MiniMax-M2.7",
    "anthropic": "MiniMax-M2.7",
    "cloudflare": "minimax/m2.7",
    "cloudflare-openai": "minimax/m2.7",
    "dashscope": "MiniMax-M2.5",
    "cloudsway": "MiniMax-M2.7",
}
