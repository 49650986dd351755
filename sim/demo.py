"""`vla-async demo` — the main job: a policy server and a robot client on a simulated pick-and-place.

1. starts `python -m policy_server` (`--policy=auto`, the default: the learned policy shipped in
   models/<task>/policy.onnx when there is one, served by the onnx backend from the cameras' images,
   else the scripted expert; `--policy=expert|learned|PATH` chooses; injected latency ~150 ms with jitter, like a large VLA on a GPU) on a
   free 127.0.0.1 port, and the real-time client with the default strategy, vlash_rail, whose `auto` fields
   adapt to the served policy (the shipped pick_place policy takes a committed action prefix, so it runs
   real-time chunking; a plainly trained image policy gets the measured state placed by the servo lag) on
   `pick_place`, the arm advancing with the wall clock; prints a live status line and films the front
   camera while the episode runs (and a few seconds past its end);
2. compares, in virtual time over a few held-out seeds, that strategy with `sync` at the same latency
   and the zero-latency synchronous reference (the same scheduler code, deterministic, fast);
3. prints a report (table, column legend, quality bar, a plain-words reading; also report.md), writes
   the trajectory plot, report.json, the real-time episode log and the MP4 into the output folder.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sim.demo_report import demo_report
from sim.eval.episode_log import EpisodeLog
from sim.eval.grid import EvalConfig, expand_cells, latency_config, resolve_strategy
from vla_async.cli_parser import OneLineArgumentParser
from vla_async.config import (
    BackendConfig,
    ConfigError,
    InjectedLatencyConfig,
    StrategyConfig,
    build_config,
    strategy_names,
)
from vla_async.config.schema import DEFAULT_STRATEGY, SIM_TASKS
from vla_async.scheduler import resolve_conditioning

#: seconds the camera keeps filming after the live episode ends (the arm holds its last command)
VIDEO_LINGER_S = 3.0
#: the learned policies shipped with the repository (models/<task>/policy.onnx, see models/README.md)
MODELS_DIR = Path(__file__).resolve().parents[1] / "models"


def build_parser() -> argparse.ArgumentParser:
    p = OneLineArgumentParser(prog="vla-async demo", allow_abbrev=False,
                              description="server + real-time client on pick_place, then a comparison report")
    p.add_argument("--task", default="pick_place", help=" | ".join(SIM_TASKS))
    p.add_argument("--strategy", default=DEFAULT_STRATEGY,
                   help=f"the strategy to run live: {' | '.join(strategy_names())} (default {DEFAULT_STRATEGY}: its "
                   "conditioning and real-time chunking adapt to the served policy; the demo prints what they resolve to)")
    p.add_argument("--policy", default="auto",
                   help="auto (learned if models/<task>/policy.onnx exists, else expert) | learned | expert "
                        "(the scripted one) | a path to an .onnx policy")
    p.add_argument("--latency_ms", default="150", help="mean injected model latency, ms")
    p.add_argument("--jitter_ms", default="25", help="its jitter (std), ms")
    p.add_argument("--seed", default="1000", help="seed of the real-time episode (1000+: scenes no shipped policy was "
                   "trained on)")
    p.add_argument("--compare_seeds", default="1000-1002", help="seeds for the virtual-time comparison")
    p.add_argument("--duration_s", default="30", help="episode timeout, s")
    p.add_argument("--out", default="runs/demo", help="report, plots and video go here")
    p.add_argument("--no-video", dest="video", action="store_false")
    p.add_argument("--quiet", action="store_true", help="no live status line / progress bar")
    return p


def demo_config(args: argparse.Namespace) -> EvalConfig:
    """The comparison grid; every flag validated like a config field (one-line ConfigError)."""
    backend = policy_backend(args.policy, args.task)
    config = build_config(EvalConfig, {
        "tasks": [args.task], "strategies": [args.strategy, "sync"], "latencies_ms": [args.latency_ms],
        "jitter_ms": args.jitter_ms, "seeds": args.compare_seeds, "max_duration_s": args.duration_s,
    })
    try:
        args.seed = int(args.seed)
    except ValueError:
        raise ConfigError(f"seed: {args.seed!r} is not an integer") from None
    if backend is not None:
        config = config.model_copy(update={"backend": BackendConfig(**backend)})
    return config


def policy_backend(policy: str, task: str) -> dict[str, Any] | None:
    """The served policy's backend section: None for the scripted expert, else the onnx backend."""
    shipped = MODELS_DIR / task / "policy.onnx"
    if policy == "expert" or (policy == "auto" and not shipped.is_file()):
        return None
    path = shipped if policy in ("auto", "learned") else Path(policy)
    if not path.is_file():
        what = f"no learned {task} policy at {path}" if policy == "learned" else f"no policy file {path}"
        raise ConfigError(f"policy: {what}; use --policy=expert for the scripted one")
    return {"name": "onnx", "path": str(path)}


def conditioning_line(config: EvalConfig, strategy: StrategyConfig) -> str:
    """What `strategy`'s `auto` fields resolve to for the served policy (the card's spec; the scripted expert has
    no cameras and takes no prefix), in words."""
    spec = None
    if config.backend is not None:
        from policy_server.backend import BackendError
        from policy_server.model_io import read_card

        try:
            spec = read_card(config.backend.path).spec
        except (BackendError, OSError, ValueError):  # no or a bad card: the backend says so, in one line, when it loads
            return "the policy's card could not be read"
    return resolve_conditioning(strategy, spec).describe()


def policy_label(config: EvalConfig) -> str:
    return "expert" if config.backend is None else f"{config.backend.name} {config.backend.path}"


def require_sim_extra(learned: bool = False) -> None:
    """The demo needs the sim extra (and onnxruntime to serve a learned policy); say so before anything
    starts (vla_async.cli prints the one line)."""
    modules = ("mujoco", "matplotlib", "imageio", "tqdm") + (("onnxruntime",) if learned else ())
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    require_sim_extra()
    try:
        config = demo_config(args)
        require_sim_extra(learned=config.backend is not None)
        return run_demo(args, config)
    except ConfigError as exc:  # bad flags, or a policy file the backend cannot load: one line, no traceback
        print(f"vla-async demo: {exc}", file=sys.stderr)
        return 2


def run_demo(args: argparse.Namespace, config: EvalConfig) -> int:
    """The three steps of the module doc, with `config` from `demo_config(args)`."""
    latency_ms = config.latencies_ms[0]
    strategy = resolve_strategy(config, args.strategy)
    latency = latency_config(config, latency_ms, seed=0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from sim.eval.seen_scenes import seen_scenes_note

    seen_note = seen_scenes_note(config.model_copy(update={"seeds": sorted({args.seed, *config.seeds})}))
    if seen_note:
        print(seen_note, flush=True)

    conditioning = conditioning_line(config, strategy)
    print(f"[1/3] real time: policy server ({policy_label(config)}, {latency_ms:.0f}±{config.jitter_ms:.0f} ms injected) + "
          f"robot client ({strategy.name}: {conditioning}) on {args.task}, seed {args.seed}", flush=True)
    live_log, video = run_live(args, config, strategy, latency, out)
    from sim.eval.runner import metrics_for, row_for

    live_cell = next(c for c in expand_cells(config) if c.strategy_name == args.strategy and c.latency.mean_ms > 0)
    live_row = {**row_for(live_cell, [metrics_for(config, live_log)]), "engine": "realtime",
                "strategy": f"{args.strategy} (real time, seed {args.seed})"}

    print(f"[2/3] virtual time: {args.strategy} vs sync at {latency_ms:.0f} ms vs sync at 0 ms, "
          f"seeds {args.compare_seeds}", flush=True)
    from sim.eval.runner import run_grid

    result = run_grid(config, progress=not args.quiet)
    rows = [live_row, *({**r, "engine": "virtual"} for r in result.rows)]

    print("[3/3] report\n")
    report = demo_report(rows, config, args.strategy, live_log, live_row, result.logs, out, conditioning)
    text = report.text + (f"\n\n{seen_note}" if seen_note else "")
    print(text)
    (out / "report.md").write_text(text + "\n")
    from sim.eval.report import write_json

    write_json(out / "report.json", {"live": live_config(args, config, strategy), "comparison": config.model_dump()},
               rows, result.episodes, extra={"quality_bar": report.checks, "reading": report.reading})
    live_log.save_jsonl(out / "live_episode.jsonl")
    print(f"\nreport: {out / 'report.md'}\nplot: {report.plot}\nJSON: {out / 'report.json'}\n"
          f"real-time episode log: {out / 'live_episode.jsonl'}")
    if video is not None:
        print(f"video (a camera over the table, filmed during the real-time run, {VIDEO_LINGER_S:.0f} s past its end): {video}")
    return 0


def live_config(args: argparse.Namespace, config: EvalConfig, strategy: StrategyConfig) -> dict[str, Any]:
    return {"engine": "realtime", "task": args.task, "seed": args.seed, "fps": config.fps, "policy": policy_label(config),
            "latency_ms": config.latencies_ms[0], "jitter_ms": config.jitter_ms,
            "latency_distribution": config.latency_distribution, "strategy": strategy.model_dump()}


def run_live(args: argparse.Namespace, config: EvalConfig, strategy: StrategyConfig,
             latency: InjectedLatencyConfig, out: Path) -> tuple[EpisodeLog, Path | None]:
    """The real-time episode (the eval engine's own function) with a live status line and a camera."""
    from robot_client.live_status import LiveStatus
    from sim.eval.realtime_engine import run_realtime_episode

    holder: list[Any] = []
    recorders: list[Any] = []

    def on_client(client: Any) -> None:
        holder.append(client)
        if args.video:
            recorders.append(_start_recorder(client.robot))

    def status() -> str:
        return holder[0].status_line() if holder else "starting the policy server..."

    t0 = time.monotonic()
    linger = VIDEO_LINGER_S if args.video else 0.0
    stream = open("/dev/null", "w") if args.quiet else sys.stderr  # noqa: SIM115
    try:
        with LiveStatus(status, stream=stream):
            log = run_realtime_episode(args.task, strategy, latency, args.seed, fps=config.fps,
                                       chunk_length=config.chunk_length, max_duration_s=config.max_duration_s,
                                       safety=config.safety, workdir=out / "live", on_client=on_client,
                                       linger_s=linger, backend=config.backend, cameras=config.cameras,
                                       image_size=config.image_size)
    finally:
        for rec in recorders:
            rec.stop()
        if args.quiet:
            stream.close()
    done = f"success in {log.completion_time_s:.2f} s" if log.success else "no success"
    print(f"      {done}; {log.num_ticks} ticks, {len(log.requests)} requests, wall {time.monotonic() - t0:.1f} s")
    video = _save_video(recorders[0], out / "front.mp4") if recorders else None
    return log, video


def _start_recorder(robot: Any) -> Any:
    from sim.video import LiveCameraRecorder

    return LiveCameraRecorder(robot, camera="film").start()


def _save_video(recorder: Any, path: Path) -> Path | None:
    try:
        return recorder.save(path)
    except Exception as exc:  # a video is a bonus: never fail the demo for it
        print(f"(no video: {exc})")
        return None
