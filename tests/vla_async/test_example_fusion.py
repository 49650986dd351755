"""The smallest possible new fusion, added the way docs/fusion.md says, running through the real scheduler."""

from __future__ import annotations

import numpy as np
from sched_helpers import make_robot

from vla_async import chunk_fusion
from vla_async.chunk_fusion import ChunkFusion
from vla_async.config.schema import strategy_config
from vla_async.messages import ActionChunk
from vla_async.plan import Plan, Trajectory
from vla_async.scheduler import ActionScheduler


class MeanFusion(ChunkFusion):
    """Ticks both chunks cover get the mean of the old and the new position; a hold is replaced."""

    def merge(self, plan: Plan, new: Trajectory, j: int) -> int:
        plan.mix_overlap(j, new.from_tick(j).pva.copy(), new.source, lambda count: 0.5 * (count > 0)[:, None])
        return 0


def test_a_new_fusion_is_one_class_and_a_registry_entry(monkeypatch):
    monkeypatch.setitem(chunk_fusion.FUSIONS, "mean", f"{__name__}:MeanFusion")
    base = strategy_config("temporal_ensemble")  # request every tick, no rollforward, no smoothing
    strategy = base.model_copy(update={"name": "mean", "fuser": base.fuser.model_copy(update={"kind": "mean"})})
    robot = make_robot(dof=3, gripper=False)
    sched = ActionScheduler(strategy, robot, chunk_length=20)  # no safety layer: commands are the plan
    assert isinstance(sched.fusion, MeanFusion)
    state = np.zeros(3)
    first = sched.on_tick(0, state).request
    a = np.linspace(0.0, 1.0, 20)[:, None] * np.ones((1, 3))
    assert sched.on_chunk(ActionChunk(first.request_id, first.exec_tick, a), k_now=1).accepted
    second = sched.on_tick(1, state).request
    b = np.full((20, 3), 2.0)
    assert sched.on_chunk(ActionChunk(second.request_id, second.exec_tick, b), k_now=2).accepted
    first_start = first.exec_tick + 1  # the arm was held at tick 0 (no plan yet): the first chunk starts a tick later
    for k in range(2, 20):
        out = sched.on_tick(k, state)
        want = 0.5 * (a[k - first_start] + b[k - second.exec_tick])
        np.testing.assert_allclose(out.command, want, atol=1e-12)
        assert out.source_request_id == second.request_id
