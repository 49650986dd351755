"""`vla-async sim snapshot`: look at the simulation without a viewer.

Writes one PNG per camera of the task's first frame, and with `--mp4` an MP4 of a zero-latency
expert episode (cameras side by side), rendered headless.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sim.tasks.layout import TASKS


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vla-async sim", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    snap = sub.add_parser("snapshot", help="camera PNGs (and an expert episode MP4 with --mp4)")
    snap.add_argument("--task", choices=TASKS, default="pick_place")
    snap.add_argument("--seed", type=int, default=0)
    snap.add_argument("--out", default="sim_snapshot", help="output folder")
    snap.add_argument("--size", type=int, default=224, help="image height and width")
    snap.add_argument("--mp4", action="store_true", help="also record an expert episode")
    snap.add_argument("--max-seconds", type=float, default=10.0, help="cap on the episode length")
    snap.add_argument("--horizon", type=int, default=10, help="actions executed per expert chunk")
    return p


def snapshot(task: str, seed: int, out: Path, size: int, mp4: bool, max_seconds: float, horizon: int) -> list[Path]:
    import imageio.v2 as imageio

    import sim
    from sim.experts import ExpertPolicy

    out.mkdir(parents=True, exist_ok=True)
    robot = sim.make_robot(task, seed=seed, image_size=(size, size))
    robot.connect()
    written = []
    try:
        obs = robot.get_observation()
        for cam, image in obs.images.items():
            path = out / f"{task}_{seed}_{cam}.png"
            imageio.imwrite(path, image)
            written.append(path)
        if mp4:
            path = out / f"{task}_{seed}_expert.mp4"
            expert = ExpertPolicy(50, robot.spec.fps)
            with imageio.get_writer(path, fps=robot.spec.fps, macro_block_size=1) as writer:
                for k in range(int(max_seconds * robot.spec.fps)):
                    if k % horizon == 0:
                        chunk = expert.plan(obs.state, obs.environment_state, robot.instruction)
                    writer.append_data(np.concatenate(list(obs.images.values()), axis=1))
                    robot.send_action(chunk[k % horizon])
                    robot.step_tick()
                    obs = robot.get_observation()
                    if robot.task_status().done:
                        break
            written.append(path)
            status = robot.task_status()
            print(f"{task} seed {seed}: success={status.success} after {robot.time_s:.2f} s ({robot.instruction!r})")
    finally:
        robot.disconnect()
    return written


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    paths = snapshot(args.task, args.seed, Path(args.out), args.size, args.mp4, args.max_seconds, args.horizon)
    for path in paths:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
