"""Virtual-time engine: the real ActionScheduler, the simulated arm and a policy on a simulated clock.

Per tick k (time k/fps): deliver every chunk whose arrival time ≤ k/fps (`on_chunk` with k_now=k),
read the state, `on_tick`, send the command, and if a request is due, capture the observation at k,
plan the chunk with the in-process expert or the configured policy backend (rendering its cameras
only then, see `policy_source`), and schedule its arrival at capture time + the injected
latency — queued behind earlier requests when the (modelled) server is busy. Then the physics
advances one control period. Deterministic for a given seed: no wall clock enters the trajectory.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim.eval.episode_log import EpisodeLog, EpisodeRecorder
from sim.eval.policy_source import Request, make_source
from sim.eval.server_model import ServerModel
from vla_async.config import BackendConfig, InjectedLatencyConfig, SafetyConfig, StrategyConfig
from vla_async.messages import ActionChunk

_EPS = 1e-9


@dataclass(order=True)
class _Pending:
    arrival_s: float
    request_id: int
    chunk: Any = field(compare=False)
    capture_s: float = field(compare=False)


def episode_meta(task: str, strategy: StrategyConfig, latency: InjectedLatencyConfig, seed: int,
                 fps: float, engine: str) -> dict[str, Any]:
    return {"task": task, "strategy": strategy.name, "latency_ms": latency.mean_ms, "jitter_ms": latency.jitter_ms,
            "seed": seed, "fps": fps, "engine": engine}


def run_virtual_episode(
    task: str,
    strategy: StrategyConfig,
    latency: InjectedLatencyConfig,
    seed: int,
    *,
    fps: float = 30.0,
    chunk_length: int = 50,
    max_duration_s: float = 30.0,
    safety: SafetyConfig | None = None,
    server_workers: int = 1,
    policy: BackendConfig | None = None,
    cameras: Sequence[str] | None = None,
    image_size: int | None = None,
) -> EpisodeLog:
    """Run one episode in virtual time and return its per-tick log (chunks from `policy`, see policy_source)."""
    import sim
    from sim.injected_latency import LatencySampler
    from vla_async.scheduler import ActionScheduler

    source = make_source(policy, chunk_length=chunk_length, fps=fps, cameras=cameras, image_size=image_size)
    chunk_length = source.chunk_length
    robot = sim.make_robot(task, mode="virtual", fps=fps, seed=seed, cameras=source.cameras,
                           image_size=source.image_size, render=source.needs_images)
    robot.connect()
    try:
        robot.reset(seed)
        spec = robot.spec
        sampler = LatencySampler(latency.model_copy(update={"seed": latency.seed * 100_003 + seed}))
        sched = ActionScheduler(strategy, spec, chunk_length, safety)
        sched.prepare()  # as the real-time client does: no tick pays for building an operator
        server = ServerModel(server_workers, sampler.sample_s)
        failed: list[int] = []
        gradual = ~np.asarray(spec.stepwise_mask, dtype=bool)
        rec = EpisodeRecorder(episode_meta(task, strategy, latency, seed, fps, "virtual"), fps, gradual)
        pending: list[_Pending] = []
        success, completion = False, None
        for k in range(int(round(max_duration_s * fps))):
            now = k / fps
            cost = 0.0
            for st in server.advance(now):
                heapq.heappush(pending, _Pending(st.arrival_s, st.request_id, st.payload, st.submit_s))
            for rid in failed:
                sched.on_request_failed(rid)
                rec.requests[rid].failed = True
            failed.clear()
            while pending and pending[0].arrival_s <= now + _EPS:
                item = heapq.heappop(pending)
                t0 = time.perf_counter()
                report = sched.on_chunk(item.chunk, k_now=k, latency_s=item.arrival_s - item.capture_s)
                cost += time.perf_counter() - t0
                req = rec.requests[item.request_id]
                req.arrival_tick, req.latency_s = k, item.arrival_s - item.capture_s
                req.accepted, req.dropped_actions = bool(report.accepted), int(report.dropped_actions)
            obs = robot.get_observation(with_images=False)
            t0 = time.perf_counter()
            out = sched.on_tick(k, obs.state)
            cost += time.perf_counter() - t0
            robot.send_action(out.command)
            if out.request is not None:
                q = out.request
                cond = obs.state if q.rollforward_state is None else q.rollforward_state
                actions = source.plan(Request(cond, obs.environment_state, robot.instruction,
                                              (q.exec_tick - q.tick) / fps, source.render(robot)))
                chunk = ActionChunk(q.request_id, q.exec_tick, np.asarray(actions, dtype=np.float32))
                rec.request(q.request_id, k, q.exec_tick)
                failed += server.submit(now, q.request_id, chunk)
                for st in server.advance(now):
                    heapq.heappush(pending, _Pending(st.arrival_s, st.request_id, st.payload, st.submit_s))
            rec.tick(
                tick=k, command=out.command, state=obs.state, commanded_tool=robot.tool_position_for(out.command),
                measured_tool=robot.tool_position(), target=robot.target_position(), stalled=out.stalled,
                watchdog=out.watchdog, source_request_id=out.source_request_id, delay_ticks=out.delay_ticks,
                rollforward_error=out.rollforward_error, client_cost_s=cost,
            )
            robot.step_tick()
            status = robot.task_status()
            rec.add_events(status.events)
            if status.success and completion is None:
                success, completion = True, robot.time_s
            if status.success or status.done:
                break
        return rec.finish(success, completion)
    finally:
        robot.disconnect()
        source.close()
