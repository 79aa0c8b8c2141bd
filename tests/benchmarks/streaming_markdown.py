"""What rendering markdown while a reply streams costs per frame.

    make bench-markdown
    python -m tests.benchmarks.streaming_markdown --chars-per-frame 12 --sections 40

A reply arrives in frames of ``--chars-per-frame`` characters (50 tok/s in 50 ms frames
is about 12). For each frame it times what the publisher does (``SettledMarkdown.
advance``: parse the open block when a line has ended, render newly finished blocks)
and, for comparison, what re-rendering the whole reply every frame would cost. It runs
on a reply of ``--sections`` sections of headings, prose, lists, tables and code, and on
the simulator's own reply (a long numbered list, the worst case: one block that grows).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

SECTION = (
    "## Step {n}\n\n"
    "The ship keeps a log, and **every watch** adds a line to it. Here is why it\n"
    "matters, with an example you can run.\n\n"
    "- Record the heading.\n- Note the weather.\n- Sign it.\n\n"
    "| watch | heading |\n|---|---|\n| {n} | 270 |\n\n"
    "```python\nfor watch in range({n}):\n"
    "    log.append({{'watch': watch, 'heading': 270}})\n```\n\n"
    "> Keep it short; the captain reads it at dawn.\n\n"
)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(name: str, text: str, step: int, *, whole: bool) -> None:
    from chat.markdown import render_markdown
    from chat.streaming import SettledMarkdown

    settled = SettledMarkdown()
    per_frame, rerender = [], []
    for end in range(step, len(text) + step, step):
        started = time.perf_counter()
        settled.advance(text[:end])
        per_frame.append((time.perf_counter() - started) * 1000)
        if whole:
            started = time.perf_counter()
            render_markdown(text[:end])
            rerender.append((time.perf_counter() - started) * 1000)
    final = time.perf_counter()
    render_markdown(text)
    final_ms = (time.perf_counter() - final) * 1000
    print(f"{name}: {len(text):,} chars in {len(per_frame):,} frames of {step}")
    print(
        f"  settling per frame: mean {statistics.mean(per_frame):.3f} ms, "
        f"p99 {_percentile(per_frame, 0.99):.3f} ms, max {max(per_frame):.3f} ms, "
        f"total {sum(per_frame):.0f} ms"
    )
    rendered = (
        settled.end if settled.enabled else f"{settled.end} (then plain: open block too long)"
    )
    print(f"  blocks settled: {len(settled.segments)}, chars settled: {rendered}")
    if rerender:
        print(
            f"  re-rendering the whole reply each frame instead: mean "
            f"{statistics.mean(rerender):.3f} ms, max {max(rerender):.3f} ms, "
            f"total {sum(rerender):.0f} ms"
        )
    print(f"  the final render, once: {final_ms:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chars-per-frame", type=int, default=12)
    parser.add_argument("--sections", type=int, default=40)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings_test")
    import django

    django.setup()
    from providers.simulator.replies import compose

    document = "".join(SECTION.format(n=n) for n in range(1, args.sections + 1))
    measure("sections", document, args.chars_per_frame, whole=True)
    simulated = compose([{"role": "user", "content": "Tell me everything"}], length=3000).answer
    measure("simulator reply", simulated, args.chars_per_frame, whole=True)


if __name__ == "__main__":
    main()
