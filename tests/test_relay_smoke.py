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
    print(result.stdout)


def test_a_traced_run_says_when_each_send_reached_each_stage():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    command = [sys.executable, "-m", "tests.benchmarks.relay", "--check", "--trace"]
    command += ["--steps", "4", "--tokens", "20", "--pace", "120"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    stages = [line.strip() for line in result.stdout.splitlines() if line.startswith("  ")]
    assert stages[0].startswith("the send… (of 4;"), result.stdout
    # Every stage of every send was seen, in order, as the p50s show.
    assert [line.rsplit(", ", 1)[1] for line in stages[1:]] == ["4"] * 5, result.stdout
    p50s = [float(line.split(": ")[1].split(" / ")[0]) for line in stages[1:]]
    assert p50s == sorted(p50s), result.stdout
