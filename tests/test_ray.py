"""vlmlab on Ray Serve (tests/ray_cases.py), run in a pytest process of its own.

Ray ends a driver process that loses its cluster (after a minute without its control store, say,
on a machine loaded far past its cores); the cases therefore run in a child pytest, one local Ray
session for all of them, and this test reports their outcome. The child builds its own offline
model world (tests/conftest.py) and shuts Ray down at its end, leaving no process behind.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray")  # requirements-ray.txt (make test installs it)

CASES = Path(__file__).with_name("ray_cases.py")
TIMEOUT_S = 1500  # a bound, not a measurement: the cases take about 2 min on 2 idle cores


def test_ray_serve_cases_pass_in_their_own_process():
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-s", "-p", "no:cacheprovider",
               str(CASES)]  # fmt: skip
    try:
        run = subprocess.run(
            command, cwd=CASES.parent.parent, env=os.environ.copy(), capture_output=True,
            text=True, timeout=TIMEOUT_S,
        )  # fmt: skip
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"the Ray cases did not finish within {TIMEOUT_S} s:\n{_tail(error.stdout)}")
    output = run.stdout + run.stderr
    counts = re.compile(r"\d+ (passed|skipped|failed)")
    summary = [line for line in output.splitlines() if counts.search(line)]
    for line in output.splitlines():  # the figures the cases print (batch sizes, a lost replica)
        if line.startswith(("CNN:", "CLIP:", "kill mid-crowd:")):
            print(line)
    assert run.returncode == 0, _tail(output)
    assert summary and "passed" in summary[-1], _tail(output)


def _tail(text, size: int = 6000) -> str:
    text = text.decode(errors="replace") if isinstance(text, bytes) else (text or "")
    lines = [line for line in text.splitlines() if "(ServeController" not in line
             and "(ServeReplica" not in line and "(raylet)" not in line]  # fmt: skip
    return "\n".join(lines)[-size:]
