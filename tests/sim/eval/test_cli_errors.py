"""`vla-async eval` / `vla-async demo`: every bad value is one line naming the field, the value and what
is allowed (no traceback, no pydantic URL), and `eval --help` lists the tasks and strategies."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sim import demo
from sim.eval import cli as eval_cli
from vla_async.config import strategy_names
from vla_async.config.schema import SIM_TASKS


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "http" not in err and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("argv,needles", [
    (["--task", "pickplace"], ["tasks", "'pickplace'", "did you mean 'pick_place'", "reach_jump | track"]),
    (["--strategy", "vlash-rail"], ["strategies", "'vlash-rail'", "did you mean 'vlash_rail'", "sync"]),
    (["--strategy_overrides.max_inflight=2"], ["strategy_overrides.max_inflight: unknown field",
                                               "did you mean 'max_in_flight'"]),
    (["--engine", "fast"], ["engine", "'fast'", "virtual | realtime"]),
    (["--jitter_ms", "abc"], ["jitter_ms", "'abc'"]),
])
def test_eval_bad_values(argv: list[str], needles: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert eval_cli.main(argv) == 2
    err = _one_line(capsys)
    assert err.startswith("vla-async eval: ")
    for needle in needles:
        assert needle in err, err


@pytest.mark.parametrize("argv,needles", [
    (["--strategy", "vlash-rail"], ["'vlash-rail'", "did you mean 'vlash_rail'"]),
    (["--task", "pickplace"], ["'pickplace'", "did you mean 'pick_place'"]),
    (["--latency_ms", "fast"], ["latencies_ms", "'fast'"]),
    (["--seed", "x"], ["seed", "'x'"]),
    (["--policy", "/nonexistent/policy.onnx"], ["policy: no policy file /nonexistent/policy.onnx", "--policy=expert"]),
    (["--task", "reach_dodge", "--policy", "learned"], ["policy: no learned reach_dodge policy", "--policy=expert"]),
])
def test_demo_bad_values(argv: list[str], needles: list[str], capsys: pytest.CaptureFixture[str],
                         tmp_path) -> None:
    assert demo.main([*argv, "--out", str(tmp_path)]) == 2
    err = _one_line(capsys)
    assert err.startswith("vla-async demo: ")
    for needle in needles:
        assert needle in err, err


def test_argparse_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        eval_cli.main(["--task"])
    assert info.value.code == 2
    assert "--task" in _one_line(capsys)


def test_eval_help_lists_tasks_and_strategies(capsys: pytest.CaptureFixture[str]) -> None:
    assert eval_cli.main(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert " | ".join(SIM_TASKS) in out
    for name in strategy_names():
        assert name in out
    assert "<Literal" not in out and "--engine=<virtual | realtime>" in out


def test_the_entry_point_prints_no_traceback() -> None:
    """The real command line, as a user types it (one process for all four examples of the issue)."""
    code = """
import sys
from vla_async.cli import main
for argv in (["client", "--robot.task=pickplace"], ["eval", "--task", "pickplace"],
             ["demo", "--strategy", "vlash-rail"], ["eval", "--strategy_overrides.max_inflight=2"]):
    assert main(argv) == 2, argv
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 4 and "Traceback" not in proc.stderr and "http" not in proc.stderr, proc.stderr
