"""Virtual-time episodes of the `lerobot` preset: LeRobot 0.4.4's client + server (lerobot_emulation.py)
driving the simulated arm and the in-process expert, logged like every other strategy's episodes.

Same robot, expert, information contract (policy_input), injected latency and safety layer as
virtual_engine.py; only the queueing differs. Each inference the server runs is a request in the log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.eval.episode_log import EpisodeLog, EpisodeRecorder
from sim.eval.lerobot_emulation import LeRobotLoop, LeRobotObservation, lerobot_units
from vla_async.messages import Observation
from vla_async.policy_input import policy_input
from vla_async.safety import SafetyLayer

if TYPE_CHECKING:
    from vla_async.config import InjectedLatencyConfig, SafetyConfig, StrategyConfig


def run_lerobot_episode(task: str, strategy: StrategyConfig, latency: InjectedLatencyConfig, seed: int, *,
                        fps: float, chunk_length: int, max_duration_s: float, safety: SafetyConfig | None,
                        policy_exec_offset: bool, meta: dict, expert_lag_s: float = 0.0) -> EpisodeLog:
    from sim.eval.policy_source import make_source
    from sim.eval.virtual_engine import episode_world, step_world
    from vla_async.config import SafetyConfig

    source = make_source(None, chunk_length=chunk_length, fps=fps, exec_offset=policy_exec_offset,
                         expert_lag_s=expert_lag_s)
    with episode_world(task, seed, fps, latency, source) as (robot, sampler):
        spec = robot.spec
        policy = source.spec
        layer = SafetyLayer(safety if safety is not None else SafetyConfig(enabled=False), spec)

        def plan(obs: LeRobotObservation, rid: int) -> np.ndarray:
            k, state, env = obs.payload
            msg = Observation(request_id=rid, tick=k, exec_tick=k, state=state, task=robot.instruction,
                              environment_state=env)
            return source.plan(policy_input(msg, fps, policy=policy))

        loop = LeRobotLoop(strategy.lerobot_queue_threshold, strategy.fuser.lerobot_old_weight, fps, plan,
                           sampler.sample_s)
        gradual = ~np.asarray(spec.stepwise_mask, dtype=bool)
        rec = EpisodeRecorder({**meta, "emulation": "lerobot_0_4_4"}, fps, gradual)
        success, completion, started = False, None, 0
        for k in range(int(round(max_duration_s * fps))):
            for rid in loop.deliver(k):
                req = rec.requests[rid]
                req.arrival_tick, req.accepted = k, True
            obs = robot.get_observation(with_images=False)
            if layer.position is None:
                layer.reset(np.asarray(obs.state, dtype=float))
            state = np.asarray(obs.state, dtype=float)

            def observe(timestep: int, must_go: bool, k=k, state=state, env=obs.environment_state) -> LeRobotObservation:
                return LeRobotObservation(timestep, must_go, lerobot_units(state), (k, state, env))

            step = loop.tick(k, observe)
            for rid, o, lat in loop.started[started:]:
                rec.request(rid, o.payload[0], o.payload[0]).latency_s = lat
            started = len(loop.started)
            item = step.action
            command = layer.apply(item.action) if item is not None else layer.hold()
            robot.send_action(command)
            rec.tick(tick=k, command=command, state=obs.state, commanded_tool=robot.tool_position_for(command),
                     measured_tool=robot.tool_position(), target=robot.target_position(), stalled=item is None and k > 0,
                     source_request_id=item.source if item is not None else -1,
                     planned=item.action if item is not None else None)
            ok, over, t = step_world(robot, rec)
            if ok and completion is None:
                success, completion = True, t
            if over:
                break
        rec.meta["filtered_observations"] = loop.server.filtered
        return rec.finish(success, completion)
