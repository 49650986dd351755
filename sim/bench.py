"""`vla-async bench sim`: physics steps/s, camera frames/s and expert plan time (numbers, no verdict)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np


def _physics_steps_per_s(task: str, seconds: float) -> tuple[float, float]:
    import sim
    from sim.experts import ExpertPolicy

    robot = sim.make_robot(task, cameras=(), render=False)
    robot.connect()
    expert = ExpertPolicy()
    physics = robot.world.physics
    obs = robot.get_observation(with_images=False)
    robot.send_action(expert.plan(obs.state, obs.environment_state, robot.instruction)[5])  # arm moving, contacts
    steps, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        physics.step(1000)
        steps += 1000
    rates = steps / (time.perf_counter() - t0), steps / max(time.process_time() - c0, 1e-9)
    robot.disconnect()
    return rates


def _camera_fps(size: int, seconds: float) -> dict[str, float]:
    import sim

    out = {}
    for cam in ("front", "wrist"):
        robot = sim.make_robot("pick_place", cameras=(cam,), image_size=(size, size))
        robot.connect()
        robot.get_observation()  # create the GL context
        frames, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            robot.get_observation()
            frames += 1
        out[cam] = frames / (time.perf_counter() - t0)
        robot.disconnect()
    return out


def _plan_ms(task: str, n: int) -> float:
    import sim
    from sim.experts import ExpertPolicy

    robot = sim.make_robot(task, cameras=(), render=False)
    robot.connect()
    obs = robot.get_observation(with_images=False)
    expert = ExpertPolicy(50)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        expert.plan(obs.state, obs.environment_state, robot.instruction)
        times.append(time.perf_counter() - t0)
    robot.disconnect()
    return float(np.median(times) * 1e3)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="vla-async bench sim", description=__doc__)
    p.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    p.add_argument("--size", type=int, default=224)
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    import os

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"MUJOCO_GL={os.environ.get('MUJOCO_GL')}  cores={os.cpu_count()}  load(1 min)={load:.2f}")
    for task in ("reach_jump", "pick_place"):
        wall, cpu = _physics_steps_per_s(task, args.seconds)
        print(f"physics  {task:<11} {wall:10,.0f} steps/s wall   {cpu:10,.0f} steps per CPU-second")
    for cam, fps in _camera_fps(args.size, args.seconds).items():
        print(f"camera   {cam:<11} {fps:10.1f} frames/s at {args.size}x{args.size}")
    for task in ("reach_jump", "track", "pick_place"):
        print(f"expert   {task:<11} {_plan_ms(task, 200):10.3f} ms per 50-action plan (median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
