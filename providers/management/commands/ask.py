"""Send one prompt to a configured model and stream the answer to the terminal."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from providers import registry
from providers.clients.errors import ProviderError
from providers.clients.limits import check_limits
from providers.clients.types import (
    ChatMessage,
    ChatRequest,
    Finish,
    Notice,
    ReasoningDelta,
    TextDelta,
    UsageReport,
)


class Command(BaseCommand):
    help = (
        "Send one prompt to a configured model and stream the answer, to check a key. "
        "Reasoning is printed apart, dimmed, before the answer."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("prompt", nargs="?", help="What to ask.")
        parser.add_argument("--model", help="A model key, as --list shows.")
        parser.add_argument("--list", action="store_true", help="List the models and exit.")
        parser.add_argument("--max-tokens", type=int, default=None)
        parser.add_argument("--no-stream", action="store_true", help="One whole answer.")

    def handle(self, *args: Any, **options: Any) -> None:
        models = registry.available_models()
        if options["list"] or not options["prompt"]:
            for option in models:
                self.stdout.write(f"{option.key:40} {option.label}")
            if not models:
                self.stdout.write("No models: set an API key or PARLEY_DEMO=true.")
            return
        key = options["model"] or (models[0].key if models else "")
        option = registry.get_model(key)
        if option is None:
            raise CommandError(f"No model {key!r}. Run with --list to see them.")
        request = ChatRequest(
            model=option.upstream_model,
            messages=(ChatMessage("user", options["prompt"]),),
            max_output_tokens=options["max_tokens"] or option.spec.default_output_tokens,
        )
        try:
            check_limits(request, option.spec, api=option.connection.api_label)
            asyncio.run(self._run(option, request, whole=options["no_stream"]))
        except ProviderError as error:
            raise CommandError(str(error)) from None

    async def _run(
        self, option: registry.ModelOption, request: ChatRequest, *, whole: bool
    ) -> None:
        try:
            await self._ask(option, request, whole=whole)
        finally:
            await registry.close_upstream_connections()  # this loop ends here

    async def _ask(
        self, option: registry.ModelOption, request: ChatRequest, *, whole: bool
    ) -> None:
        client = registry.client_for(option)
        out = self.stdout
        dim, reset = ("\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "")
        if whole:
            completion = await client.complete(request)
            if completion.reasoning:
                out.write(f"{dim}Thinking: {completion.reasoning}{reset}\n\n")
            out.write(completion.text + "\n")
            self._footer(completion.finish, completion.usage)
            return
        state = ""
        usage = None
        async for event in client.stream(request):
            if isinstance(event, ReasoningDelta):
                if state != "reasoning":
                    out.write(f"{dim}Thinking: ", ending="")
                    state = "reasoning"
                out.write(event.text, ending="")
            elif isinstance(event, TextDelta):
                if state == "reasoning":
                    out.write(f"{reset}\n\n", ending="")
                state = "text"
                out.write(event.text, ending="")
            elif isinstance(event, Notice):
                self.stderr.write(f"\nNote: {event.text}")
            elif isinstance(event, UsageReport):
                usage = event.usage
            elif isinstance(event, Finish):
                out.write(reset + "\n")
                self._footer(event, usage)
            out.flush()

    def _footer(self, finish: Finish, usage: Any) -> None:
        tokens = f"; {usage.input_tokens} in, {usage.output_tokens} out" if usage else ""
        self.stderr.write(f"[finished: {finish.reason} ({finish.raw_reason}){tokens}]")
