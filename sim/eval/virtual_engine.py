"""Virtual-time engine: the real ActionScheduler, the simulated arm and the expert on a simulated clock.

Per tick k (time k/fps): deliver every chunk whose arrival time ≤ k/fps (`on_chunk` with k_now=k),
read the state, `on_tick`, send the command, and if a request is due, capture the observation at k,
plan the chunk with the in-process policy (the scripted expert, or `EvalConfig.backend` through
sim/eval/policy_source.py, rendering its cameras only at request ticks), and schedule its arrival at capture time + the injected
latency — queued behind earlier requests when the (modelled) server is busy. Then the physics
advances one control period. Deterministic for a given seed: no wall clock enters the trajectory.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from sim.eval.episode_log import EpisodeLog, EpisodeRecorder
from sim.eval.policy_source import ChunkSource, make_source
from sim.eval.server_model import ServerModel
from vla_async.config import BackendConfig, ConfigError, InjectedLatencyConfig, SafetyConfig, StrategyConfig
from vla_async.messages import ActionChunk, Observation
from vla_async.policy_input import policy_input, prefix_fields
from vla_async.specs import streaming_plan

if TYPE_CHECKING:
    from vla_async.robot import RobotObservation
    from vla_async.scheduler import InferenceRequest
    from vla_async.virtual import VirtualDriver


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
    policy_exec_offset: bool = False,
    policy: BackendConfig | None = None,
    cameras: Sequence[str] | None = None,
    image_size: int | None = None,
    expert_lag_s: float = 0.0,
) -> EpisodeLog:
    """Run one episode in virtual time and return its per-tick log (chunks from the scripted expert, declared
    trained for exec_offset_s when `policy_exec_offset` and lag-compensated by `expert_lag_s`, or from the
    `policy` backend)."""
    from vla_async.scheduler import ActionScheduler
    from vla_async.virtual import VirtualDriver

    if strategy.emulate == "lerobot_0_4_4":
        from sim.eval.lerobot_engine import run_lerobot_episode

        if policy is not None:
            raise ConfigError("the lerobot emulation (strategy lerobot) runs the scripted expert only; "
                              "drop backend or use lerobot_lite")
        return run_lerobot_episode(task, strategy, latency, seed, fps=fps, chunk_length=chunk_length,
                                   max_duration_s=max_duration_s, safety=safety, policy_exec_offset=policy_exec_offset,
                                   expert_lag_s=expert_lag_s,
                                   meta=episode_meta(task, strategy, latency, seed, fps, "virtual"))
    source = make_source(policy, chunk_length=chunk_length, fps=fps, cameras=cameras, image_size=image_size,
                         exec_offset=policy_exec_offset, expert_lag_s=expert_lag_s)
    with episode_world(task, seed, fps, latency, source) as (robot, sampler):
        spec = robot.spec
        chunk_length = source.chunk_length
        driver = VirtualDriver(ActionScheduler(strategy, spec, chunk_length, safety, source.spec),
                               timer=time.perf_counter)
        server = ServerModel(server_workers, sampler.sample_s)
        failed: list[int] = []
        gradual = ~np.asarray(spec.stepwise_mask, dtype=bool)
        rec = EpisodeRecorder(episode_meta(task, strategy, latency, seed, fps, "virtual"), fps, gradual)
        success, completion = False, None
        for k in range(int(round(max_duration_s * fps))):
            now = k / fps
            _send_started(driver, server, now)
            for rid in failed:
                driver.fail(rid)
                rec.requests[rid].failed = True
            failed.clear()
            obs = robot.get_observation(with_images=False)
            step = driver.step(k, obs.state)
            for d in step.deliveries:
                rec.requests[d.chunk.request_id].arrived(k, d.latency_s, bool(d.report.accepted),
                                                         int(d.report.dropped_actions))
            out = step.output
            robot.send_action(out.command)
            if out.request is not None:
                parts = _plan_chunk(source, out.request, obs, robot, fps)
                rec.request(out.request.request_id, k, out.request.exec_tick)
                failed += server.submit(now, out.request.request_id, parts)
                _send_started(driver, server, now)
            rec.tick(
                tick=k, command=out.command, state=obs.state, commanded_tool=robot.tool_position_for(out.command),
                measured_tool=robot.tool_position(), target=robot.target_position(), stalled=out.stalled,
                watchdog=out.watchdog, source_request_id=out.source_request_id, delay_ticks=out.delay_ticks,
                rollforward_error=out.rollforward_error, client_cost_s=step.cost, planned=out.planned,
            )
            ok, over, t = step_world(robot, rec)
            if ok and completion is None:
                success, completion = True, t
            if over:
                break
        return rec.finish(success, completion)


@contextmanager
def episode_world(task: str, seed: int, fps: float, latency: InjectedLatencyConfig,
                  source: ChunkSource) -> Iterator[tuple[Any, Any]]:
    """(connected virtual robot reset to `seed` with the cameras `source` needs, the episode's latency
    sampler); disconnects the robot and closes `source` after."""
    import sim
    from sim.injected_latency import LatencySampler

    robot = sim.make_robot(task, mode="virtual", fps=fps, seed=seed, cameras=source.cameras,
                           image_size=source.image_size, render=source.needs_images)
    robot.connect()
    try:
        robot.reset(seed)
        yield robot, LatencySampler(latency.model_copy(update={"seed": latency.seed * 100_003 + seed}))
    finally:
        robot.disconnect()
        source.close()


def step_world(robot: Any, rec: EpisodeRecorder) -> tuple[bool, bool, float]:
    """Advance the sim one control period and log the task's events: (success, episode over, time)."""
    robot.step_tick()
    status = robot.task_status()
    rec.add_events(status.events)
    rec.task_metrics = dict(status.metrics)
    return status.success, status.success or status.done, robot.time_s


def _send_started(driver: VirtualDriver, server: ServerModel, now_s: float) -> None:
    """Chunks the modelled server started computing by `now_s` travel to the robot, arriving when computed: each
    part of a streamed chunk when its share of the compute is done."""
    for st in server.advance(now_s):
        for chunk, share in st.payload:
            arrival = st.start_s + share * (st.arrival_s - st.start_s)
            driver.send(chunk, arrival, latency_s=arrival - st.submit_s)


def _plan_chunk(source: ChunkSource, request: InferenceRequest, obs: RobotObservation, robot: Any,
                fps: float) -> list[tuple[ActionChunk, float]]:
    """The in-process policy's chunk for `request`, conditioned as the policy server conditions a backend
    (the cameras the policy needs are rendered here, at the request tick, and nowhere else), as (message, share of
    the compute done when it is sent): the whole chunk at 1, or, for a request to stream and a policy whose spec
    declares streaming, each part at its share of the flow steps (the injected latency is taken as the flow steps'
    compute, spread evenly over them): the first final rows, then the rows each later step finishes, the rest at 1."""
    message = Observation(request_id=request.request_id, tick=request.tick, exec_tick=request.exec_tick,
                          state=obs.state, images=source.render(robot), task=robot.instruction,
                          rollforward_state=request.rollforward_state, environment_state=obs.environment_state,
                          **prefix_fields(request, source.spec))
    actions = np.asarray(source.plan(policy_input(message, fps, policy=source.spec)), dtype=np.float32)
    plan = streaming_plan(source.spec) if request.stream else None
    rid, start = request.request_id, request.exec_tick
    if plan is None:
        return [(ActionChunk(rid, start, actions), 1.0)]
    parts, lo = [], 0
    for step, rows in plan.sends:
        parts.append((ActionChunk(rid, start, actions[lo:rows], row_offset=lo, final=rows == len(actions)),
                      step / plan.steps))
        lo = rows
    return parts
