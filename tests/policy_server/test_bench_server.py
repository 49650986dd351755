"""`vla-async bench server` runs end to end (robots in a child process) and reports every robot."""

from __future__ import annotations

import re

import pytest

from policy_server.bench import main

pytestmark = [pytest.mark.integration]


@pytest.mark.timeout(120)
def test_bench_server_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--backend", "linear", "--requests", "20", "--robots", "3", "--duration", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "batching speed-up" in out
    per_robot = re.search(r"per robot \[([^\]]*)\]", out)
    assert per_robot is not None
    counts = [int(x) for x in per_robot.group(1).split(",")]
    assert len(counts) == 3 and all(c > 0 for c in counts)  # every robot was served
