"""Training budgets: wall clock and the training process's own CPU time (the same compute on a loaded machine)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from policy_server.learning.train import TrainConfig, budget_used, learning_rate  # noqa: E402


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(dataset="d", out="o", steps=1000, lr=1e-3, **kw)


def test_the_larger_share_of_either_budget_counts():
    cfg = _cfg(time_budget_s=100.0, cpu_budget_s=50.0)
    assert budget_used(cfg, 10.0, 40.0) == pytest.approx(0.8)  # CPU is the binding one
    assert budget_used(cfg, 90.0, 5.0) == pytest.approx(0.9)
    assert budget_used(_cfg(), 1e6, 1e6) == 0.0  # no budget: only the step count ends the run


def test_the_schedule_follows_the_cpu_budget():
    cfg = _cfg(cpu_budget_s=100.0)
    assert learning_rate(cfg, 500, elapsed_s=10_000.0, cpu_s=0.0) == pytest.approx(0.5e-3)  # step fraction 0.5
    assert learning_rate(cfg, 500, elapsed_s=0.0, cpu_s=100.0) == pytest.approx(0.0, abs=1e-12)  # budget spent
    assert learning_rate(cfg, 500, elapsed_s=0.0, cpu_s=50.0) == pytest.approx(0.5e-3)


@pytest.mark.parametrize("budget", [{"cpu_budget_s": 0.0}, {"time_budget_s": -1.0}])
def test_a_budget_must_be_positive(budget):
    with pytest.raises(ValueError, match="budgets must be > 0"):
        _cfg(**budget)
