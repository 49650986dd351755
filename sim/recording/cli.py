"""`vla-async record`: scripted-expert demonstrations → a LeRobotDataset v3 folder.

Episodes are recorded and their videos encoded in `--workers` processes (episode i uses seed
`--seed + i`); the main process writes the data parquet files in episode order and the metadata
at the end, then prints the recording rate. Noise injection is described in `sim.recording.noise`.
`--policy` records DAgger data instead: a trained policy drives (the expert's chunk with probability
`--beta`) and the expert labels at training time (`vla-async train --labels expert`); see
`sim.recording.dagger`.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sim.recording.dagger import DaggerConfig
from sim.recording.noise import NoiseConfig
from sim.tasks.layout import TASKS


@dataclass(frozen=True)
class RecordJob:
    root: Path
    task: str
    seed: int
    episode_index: int
    cameras: tuple[str, ...]
    image_size: int
    fps: float
    noise: NoiseConfig
    max_seconds: float | None
    replan_every: int
    dagger: DaggerConfig | None = None


def run_job(job: RecordJob):
    """Worker: record one episode and encode its videos; returns its EpisodeSummary (no images)."""
    from sim.recording.episode import record_episode
    from sim.recording.lerobot_v3 import write_episode_videos

    episode = record_episode(job.task, job.seed, cameras=job.cameras, image_size=job.image_size, fps=job.fps,
                             noise=job.noise, max_seconds=job.max_seconds,
                             replan_every=job.replan_every, dagger=job.dagger)
    return write_episode_videos(job.root, episode, job.episode_index)


RECORD_SEED = 100_000  # a trained policy has seen its recorded scenes: evaluations on them are not held out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vla-async record", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=TASKS, default="reach_jump")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=RECORD_SEED,
                   help=f"seed of episode 0 (episode i uses seed + i; default {RECORD_SEED}: the recorded scenes stay "
                   "clear of the tuning seeds 0-99 and the reporting seeds 1000+)")
    p.add_argument("--out", required=True, help="dataset folder (must not hold a dataset yet)")
    p.add_argument("--workers", type=int, default=2, help="recording processes")
    p.add_argument("--cameras", default="front,wrist", help="comma-separated camera names ('' for none)")
    p.add_argument("--image-size", type=int, default=64, help="image height and width (pixels)")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--max-seconds", type=float, default=None, help="cap on each episode's length")
    p.add_argument("--replan-every", type=int, default=10, help="ticks between expert plans (actions executed per chunk)")
    p.add_argument("--noise-std", type=float, default=0.08, help="perturbation std per arm joint (rad); 0 = off")
    p.add_argument("--noise-rate", type=float, default=0.6, help="perturbation bursts per second")
    p.add_argument("--noise-fraction", type=float, default=0.5, help="fraction of episodes with noise")
    p.add_argument("--policy", default=None, help="DAgger: a trained policy (.onnx or policy.pt) drives; the expert "
                   "labels at training time (--labels expert)")
    p.add_argument("--beta", type=float, default=0.0,
                   help="DAgger: probability per chunk that the expert's chunk is executed instead of the policy's")
    p.add_argument("--policy-state", choices=("command", "measured"), default="command",
                   help="DAgger: the state the policy is given: the last command sent (as vlash_rail's last_command "
                   "rollforward does) or the measured state")
    p.add_argument("--policy-delay-ticks", type=int, default=0,
                   help="DAgger: ticks from a policy request to its chunk's use (inference latency; the previous chunk "
                   "runs meanwhile)")
    p.add_argument("--policy-lag-ticks", type=int, default=0,
                   help="DAgger: place each policy chunk this many ticks before its capture tick, as lag_rail's "
                   "strategy.state_lag_ticks does (needs --policy-state measured)")
    return p


def record(args: argparse.Namespace) -> Path:
    import sim  # noqa: F401 - sets MUJOCO_GL before workers start
    from sim import so101
    from sim.recording.lerobot_v3 import LeRobotV3Writer
    from sim.tasks.layout import ENV_STATE_DIM

    if args.episodes < 1 or args.image_size < 8 or args.replan_every < 1:
        raise ValueError("--episodes and --replan-every must be >= 1, --image-size >= 8")
    cameras = tuple(c for c in args.cameras.split(",") if c)
    so101.robot_spec(args.fps, cameras, (args.image_size, args.image_size))  # validates the camera names
    noise = NoiseConfig(std_rad=args.noise_std, rate_hz=args.noise_rate, episode_fraction=args.noise_fraction)
    dagger = DaggerConfig(args.policy, args.beta, args.policy_state, args.policy_delay_ticks,
                          args.policy_lag_ticks) if args.policy else None
    if dagger is not None:  # load it once here: a policy that does not fit is a one-line error before any work
        from sim.recording.dagger import PolicyDriver

        PolicyDriver(dagger, args.seed, args.fps, cameras, args.image_size, args.replan_every).close()
    root = Path(args.out)
    writer = LeRobotV3Writer(root, fps=args.fps, cameras=cameras, image_size=args.image_size,
                             state_names=so101.NAMES, env_dim=ENV_STATE_DIM, robot_type=so101.ROBOT_NAME)
    jobs = [RecordJob(root, args.task, args.seed + i, i, cameras, args.image_size, args.fps, noise, args.max_seconds,
                      args.replan_every, dagger)
            for i in range(args.episodes)]
    start = time.perf_counter()
    successes = 0
    with _pool(args.workers) as pool:
        results = pool.imap(run_job, jobs) if pool is not None else map(run_job, jobs)
        for i, summary in enumerate(_progress(results, len(jobs))):
            writer.add(summary, i)
            successes += summary.episode.success
    writer.finalize()
    wall = time.perf_counter() - start
    frames = writer.total_frames
    print(f"recorded {len(jobs)} {args.task} episodes ({frames} frames, {len(cameras)} camera(s) at "
          f"{args.image_size} px, {args.workers} worker(s)) in {wall:.1f} s: {frames / wall:.1f} steps/s, "
          f"{len(jobs) / wall * 60:.1f} episodes/min; {'policy (DAgger)' if dagger else 'expert'} success "
          f"{successes}/{len(jobs)} → {root}")
    return root


class _NoPool:
    def __enter__(self):
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _pool(workers: int):
    if workers <= 1:
        return _NoPool()
    return mp.get_context("spawn").Pool(workers)


def _progress(iterable, total: int):
    try:
        from tqdm import tqdm
    except ModuleNotFoundError:
        return iterable
    return tqdm(iterable, total=total, desc="record", unit="ep", file=sys.stderr, mininterval=2.0)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        record(args)
    except (ValueError, FileExistsError) as exc:
        print(f"vla-async record: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
