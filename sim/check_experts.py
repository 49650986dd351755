"""Expert success at zero latency: `python -m sim.check_experts --seeds 50 [--task T]`.

Closed loop in virtual time, no rendering: every `--horizon` ticks the expert plans from the
measured state and the robot executes the first actions of the chunk.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sim.tasks.layout import TASKS


@dataclass(frozen=True)
class EpisodeResult:
    task: str
    seed: int
    success: bool
    time_s: float
    progress: float
    metrics: dict[str, float]


def run_expert_episode(task: str, seed: int, horizon: int = 10, chunk_length: int = 50, fps: float = 30.0) -> EpisodeResult:
    import sim
    from sim.experts import ExpertPolicy

    robot = sim.make_robot(task, mode="virtual", fps=fps, seed=seed, cameras=(), render=False)
    robot.connect()
    expert = ExpertPolicy(chunk_length, fps)
    chunk: np.ndarray | None = None
    status = robot.task_status()
    max_ticks = int(round(robot.world.task.duration_s * fps)) + 1
    for k in range(max_ticks):
        if k % horizon == 0:
            obs = robot.get_observation(with_images=False)
            chunk = expert.plan(obs.state, obs.environment_state, robot.instruction)
        robot.send_action(chunk[k % horizon])
        robot.step_tick()
        status = robot.task_status()
        if status.done:
            break
    robot.disconnect()
    return EpisodeResult(task, seed, status.success, robot.time_s, status.progress, status.metrics)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.check_experts", description=__doc__)
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--task", choices=TASKS, action="append")
    parser.add_argument("--horizon", type=int, default=10, help="actions executed per chunk")
    args = parser.parse_args(argv)
    worst = 1.0
    for task in args.task or TASKS:
        t0 = time.perf_counter()
        results = [run_expert_episode(task, s, args.horizon) for s in range(args.seeds)]
        rate = np.mean([r.success for r in results])
        worst = min(worst, rate)
        failed = [r.seed for r in results if not r.success]
        print(f"{task:<11} success {rate:6.1%} over {args.seeds} seeds  mean episode {np.mean([r.time_s for r in results]):5.2f} s "
              f"(wall {time.perf_counter() - t0:5.1f} s)  failed seeds: {failed}")
    return 0 if worst >= 0.95 else 1


if __name__ == "__main__":
    sys.exit(main())
