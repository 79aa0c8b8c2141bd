"""A small run of the relay benchmark (``make bench-relay``): real daphne, a simulator
in its own process, sockets signed in as users. Not timed: it checks that every socket
saw every character and every stored reply equals what the upstream sent."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.live import ROOT

pytestmark = pytest.mark.integration


def test_the_relay_benchmark_loses_nothing_in_a_small_run():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    command = [sys.executable, "-m", "tests.benchmarks.relay", "--check"]
    command += ["--steps", "8", "--tokens", "60", "--pace", "120", "--frame-interval", "0.02"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| 8 |")]
    assert len(rows) == 1, result.stdout
    # The legs through Parley come from the simulator's own timestamps: each is a time.
    to_upstream, to_socket, direct, added = (
        [float(part) for part in cell.split(" / ")] for cell in rows[0].split("|")[-5:-1]
    )
    assert 0 < to_upstream[0] <= to_upstream[1] < 5000, rows[0]
    assert 0 < to_socket[0] <= to_socket[1] < 5000, rows[0]
    assert all(0 < leg < 5000 for leg in direct), rows[0]
    assert added[0] <= added[1], rows[0]
    print(result.stdout)


def test_a_traced_run_says_when_each_send_reached_each_stage():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    command = [sys.executable, "-m", "tests.benchmarks.relay", "--check", "--trace"]
    command += ["--steps", "4", "--tokens", "20", "--pace", "120"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    loop = [line.strip() for line in lines if line.startswith("  the event loop")]
    stages = [
        line.strip()
        for line in lines
        if line.startswith("  ") and not line.startswith(("    ", "  the event loop"))
    ]
    # What the loop ran before the median early request, and before the last first words.
    assert [line.split(" (")[0] for line in loop] == [
        "the event loop, to the median early request",
        "the event loop, to the last first words",
    ], result.stdout
    for line in loop:  # "the event loop, to … (12.3 ms): busy 4.5 ms"
        window, busy = (float(part.split(" ms")[0]) for part in line.split("(")[1].split(": busy "))
        assert 0 <= busy <= window + 0.1, line  # counted within the span, rounded
    callbacks = [line.strip() for line in lines if line.startswith("    ") and " runs of " in line]
    # The early requests' first steps (writing them) are among what the loop ran.
    assert any(line.endswith("traced_pull (first step)") for line in callbacks), result.stdout
    assert stages[0].startswith("the send… (of 4;"), result.stdout
    # Every stage of every send was seen, in order, as the p50s show.
    assert [line.rsplit(", ", 1)[1] for line in stages[1:]] == ["4"] * 5, result.stdout
    p50s = [float(line.split(": ")[1].split(" / ")[0]) for line in stages[1:]]
    assert p50s == sorted(p50s), result.stdout
