"""Shared helpers for the scheduler tests: a small robot spec and a run of the scheduler in virtual time."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from vla_async.messages import ActionChunk
from vla_async.scheduler import ActionScheduler, ChunkReport, InferenceRequest, TickOutput
from vla_async.specs import RobotSpec
from vla_async.virtual import VirtualDriver


def make_robot(dof: int = 5, gripper: bool = True, fps: float = 30.0, limit: float = 3.0) -> RobotSpec:
    names = tuple(f"joint{i}.pos" for i in range(dof)) + (("gripper.pos",) if gripper else ())
    return RobotSpec(
        name="test_arm",
        fps=fps,
        state_names=names,
        action_names=names,
        stepwise_actions=("gripper.pos",) if gripper else (),
        position_limits=tuple((-limit, limit) for _ in names),
    )


def sine_policy(request: InferenceRequest, horizon: int, dim: int, fps: float = 30.0) -> np.ndarray:
    """A smooth chunk for ticks exec_tick .. exec_tick+H-1 (a function of absolute time)."""
    t = (request.exec_tick + np.arange(horizon))[:, None] / fps
    return 0.5 * np.sin(t + np.arange(dim)[None, :] * 0.3)


@dataclass
class Run:
    outputs: list[TickOutput] = field(default_factory=list)
    chunks: dict[int, ActionChunk] = field(default_factory=dict)  # request id -> chunk
    reports: list[tuple[int, ChunkReport]] = field(default_factory=list)  # (k_now, report)
    plans_after_chunk: list[tuple[int, int, int]] = field(default_factory=list)  # (k_now, start, end)

    def chunk_start(self, request_id: int) -> int:
        """The tick an aligned chunk's row 0 is for: its exec tick, later by the ticks the arm was held (no plan)
        from its request (or its exec tick, when later) to its arrival — a held arm did not move along any plan."""
        arrival = next(k for k, rep in self.reports if rep.request_id == request_id)
        tick = next(o.request.tick for o in self.outputs if o.request is not None and o.request.request_id == request_id)
        start = self.chunks[request_id].start_tick
        return start + sum(o.source_request_id < 0 for o in self.outputs if max(tick, start) <= o.tick < arrival)


def drive(
    sched: ActionScheduler,
    n_ticks: int,
    latency_ticks: Callable[[int], int] | Sequence[int],
    policy: Callable[[InferenceRequest], np.ndarray] | None = None,
    plant: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    start_state: np.ndarray | None = None,
) -> Run:
    """A request made at tick k is answered (by `policy`) before tick k + latency is commanded (VirtualDriver)."""
    dim = sched.action_dim
    policy = policy or (lambda req: sine_policy(req, sched.chunk_length, dim, sched.fps))
    plant = plant or (lambda state, cmd: cmd.copy())  # ideal tracker by default
    lat = latency_ticks if callable(latency_ticks) else (lambda i, seq=latency_ticks: seq[i % len(seq)])
    state = np.zeros(dim) if start_state is None else np.asarray(start_state, dtype=float)
    driver = VirtualDriver(sched)
    run = Run()
    n_req = 0
    for k in range(n_ticks):
        for d in driver.deliver(k):
            run.reports.append((k, d.report))
            run.plans_after_chunk.append((k, sched.plan.start_tick, sched.plan.end_tick))
        out = driver.step(k, state).output
        run.outputs.append(out)
        state = plant(state, out.command)
        if out.request is not None:
            req = out.request
            chunk = ActionChunk(req.request_id, req.exec_tick, policy(req).astype(np.float32))
            run.chunks[req.request_id] = chunk
            driver.send_at_tick(chunk, k + max(1, int(lat(n_req))))
            n_req += 1
    return run
