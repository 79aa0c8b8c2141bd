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
