"""`vla-async bench lerobot`: LeRobot 0.4.4's own async stack and ours, side by side on the same simulated arm.

For each injected latency, two servers serve the same ONNX model (models/reach_jump by default) with the same
constant delay added after each inference: LeRobot's gRPC PolicyServer (the model as the `vla_async` LeRobot
policy plugin, run by our ONNX backend) and our ZeroMQ policy server (`--injected_latency.mean_ms`). For each
seed, LeRobot's RobotClient and our `vla-async client --robot.kind=lerobot` drive the same LeRobot robot (the
simulated SO-101 follower, `vla_sim_follower`) on the same task and seed, each in its own process, each seeing
the joints in LeRobot's units, the two 64 px cameras and the task's instruction. The robot logs every command it
receives and the task's outcome; sim/lerobot_bench/metrics.py turns the logs into the table.

Runs in the LeRobot lane's venv (scripts/lerobot_lane.sh builds it: LeRobot with `[async]`, i.e. grpcio);
started from another Python, it re-executes itself there.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sim.lerobot_bench.metrics import EpisodeNumbers, Row, episode_numbers, markdown_table
from vla_async.local_server import wait_until

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = ROOT / "models" / "reach_jump" / "policy.onnx"
LEROBOT_CLIENT = {"actions_per_chunk": 50, "chunk_size_threshold": 0.5, "aggregate_fn_name": "weighted_average"}
STARTUP_S = 180.0  # a loaded 2-core machine imports torch and LeRobot slowly


def lane_python() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return Path(os.environ.get("LEROBOT_VENV", cache / "vla-async" / "venv-lerobot")) / "bin" / "python"


def _has_stack() -> bool:
    try:
        import grpc  # noqa: F401
        import lerobot  # noqa: F401
    except ImportError:
        return False
    return True


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="vla-async bench lerobot", description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="1000-1002", help="e.g. 1000-1004 or 1000,1003")
    p.add_argument("--latency_ms", default="0,100,200", help="injected model latency, comma-separated")
    p.add_argument("--task", default="reach_jump")
    p.add_argument("--episode_s", type=float, default=None, help="episode length (default: the task's)")
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="a vla-async ONNX model with its card")
    p.add_argument("--strategy", default="vlash_rail", help="our strategy preset(s), comma-separated")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--out", default=None, help="folder for logs and results.json (default: a temporary one)")
    p.add_argument("--recompute", default=None, metavar="FOLDER",
                   help="print the table again from a finished run's logs (its --out folder); runs nothing")
    return p.parse_args(list(argv))


def seeds_from(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    return out


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    if args.recompute:
        print(markdown_table(recompute(Path(args.recompute))) + "\n" + LEGEND)
        return 0
    if not _has_stack():
        return _reexec(argv)
    return run(args)


def _reexec(argv: Sequence[str]) -> int:
    python = lane_python()
    probe = [str(python), "-c", "import grpc, lerobot"]
    if not python.exists() or subprocess.run(probe, capture_output=True).returncode != 0:
        print(f"vla-async bench lerobot: needs LeRobot 0.4.4 with its async extra (grpcio); {python} has none. "
              f"Build the LeRobot lane's venv with `bash scripts/lerobot_lane.sh` (or pip install "
              f"'lerobot[async]==0.4.4' here)", file=sys.stderr)
        return 2
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.call([str(python), "-m", "sim.lerobot_bench.compare", *argv], env=env)


# --------------------------------------------------------------------------------------------- the runs
def run(args: argparse.Namespace) -> int:
    from sim.tasks import make_task

    task = make_task(args.task)
    episode_s = float(args.episode_s or task.duration_s)
    out = Path(args.out or tempfile.mkdtemp(prefix="bench-lerobot-"))
    out.mkdir(parents=True, exist_ok=True)
    lats = [float(x) for x in args.latency_ms.split(",")]
    strategies = [s for s in args.strategy.split(",") if s]
    seeds = seeds_from(args.seeds)
    print(header(args, episode_s, seeds, lats, strategies, out), flush=True)
    failures: list[str] = []
    rows = [row for lat in lats for row in run_latency(args, out / f"{lat:g}ms", lat, episode_s, task.instruction,
                                                       seeds, strategies, failures)]
    print("\n" + markdown_table(rows))
    print(LEGEND)
    save(out / "results.json", rows)
    print(f"logs and results.json: {out}")
    for f in failures:
        print(f"failed: {f}", file=sys.stderr)
    return 1 if failures else 0


def run_latency(args: argparse.Namespace, folder: Path, lat: float, episode_s: float, instruction: str,
                seeds: list[int], strategies: list[str], failures: list[str]) -> list[Row]:
    """Both servers at one latency; per seed one episode of each stack (alternating, so load drifts hit both)."""
    results: dict[str, list[EpisodeNumbers]] = {"lerobot": [], **{f"ours {s}": [] for s in strategies}}
    bench = LatencyRun(args, folder, lat, episode_s, instruction)
    try:
        for seed in seeds:
            for stack in results:
                ep, err = bench.episode(stack, seed)
                if err:
                    failures.append(f"{stack} @ {lat:g} ms seed {seed}: {err}")
                    print(f"  FAILED {failures[-1]}", flush=True)
                else:
                    results[stack].append(ep)
    finally:
        bench.close()
    return [Row(stack, lat, eps) for stack, eps in results.items()]


def header(args: argparse.Namespace, episode_s: float, seeds: list[int], lats: list[float], strategies: list[str],
           out: Path) -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
    return "\n".join([
        f"vla-async bench lerobot: task {args.task}, {episode_s:g} s episodes, seeds {seeds}, injected latency "
        f"{', '.join(f'{x:g}' for x in lats)} ms (constant, after each inference, both servers), {args.fps:g} Hz",
        f"policy: {args.model} for both stacks (LeRobot: as the `vla_async` policy plugin, run by our ONNX backend)",
        "LeRobot 0.4.4: its PolicyServer (gRPC) + RobotClient, "
        + ", ".join(f"{k}={v}" for k, v in LEROBOT_CLIENT.items())
        + "; the harness extends the server's SUPPORTED_POLICIES with 'vla_async' (LeRobot's list has no plugins)",
        f"ours: vla-async serve (ZeroMQ) + vla-async client --robot.kind=lerobot, strategy {', '.join(strategies)}",
        "robot: vla_sim_follower (SO-101 names, degrees, 2 cameras 64 px, environment_state off: LeRobot's client "
        "reads tuple features as images); its clock starts at the client's first read",
        f"load average {' '.join(f'{x:.2f}' if isinstance(x, float) else x for x in load)}; logs in {out}",
    ])


LEGEND = """
success: episodes the task judged a success; hits/targets: reach_jump's targets touched in time (its completion);
time to hit: target appearance → touch, mean over hit targets; first action: the client's first read of the arm
(the episode's clock starts there) → the first command planned by the policy; from there on: empty periods/ep:
1/fps control periods in which the arm received no command (an empty LeRobot queue, or a loop tick missed or
late by over half a period); holds/ep: ticks our client commanded a hold for want of a fresh planned action
(LeRobot's client sends none: its underruns are empty periods); RMS jerk: the arm's command on the 1/fps grid,
rad/s³ (gripper excluded); rate: commands per second the arm received; loop gap: time between
two commands. Measured by the robot (lerobot_robot_vla_sim/episode_log.py) and our client's tick log (holds)."""


def save(path: Path, rows: list[Row]) -> None:
    data = [{"stack": r.stack, "latency_ms": r.latency_ms, "cells": r.cells(),
             "episodes": [{k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in vars(e).items() if k != "gaps_ms"}
                          for e in r.episodes]} for r in rows]
    path.write_text(json.dumps(data, indent=1))


class LatencyRun:
    """Both servers at one injected latency, and one episode per (stack, seed)."""

    def __init__(self, args: argparse.Namespace, folder: Path, latency_ms: float, episode_s: float,
                 instruction: str) -> None:
        from lerobot_policy_vla_async.export import export_policy
        from vla_async.local_server import LocalServer

        self.args, self.folder, self.episode_s, self.instruction = args, folder, episode_s, instruction
        folder.mkdir(parents=True, exist_ok=True)
        self.policy_dir = export_policy(args.model, folder / "lerobot_policy", sim_native_to_policy_scale(),
                                        injected_latency_ms=latency_ms)
        self.env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                    "HF_HUB_OFFLINE": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
        self.ours = LocalServer(["--backend.name=onnx", f"--backend.path={args.model}",
                                 f"--injected_latency.mean_ms={latency_ms:g}"], log_path=folder / "ours_server.log",
                                startup_timeout_s=STARTUP_S)
        self.lerobot_port = free_port()
        self._lerobot_log = (folder / "lerobot_server.log").open("w")
        self.lerobot_server = subprocess.Popen(
            [sys.executable, "-m", "sim.lerobot_bench.launch", "server", "--host=127.0.0.1",
             f"--port={self.lerobot_port}", f"--fps={args.fps:g}", "--inference_latency=0", "--obs_queue_timeout=1"],
            cwd=folder, env=self.env, stdout=self._lerobot_log, stderr=subprocess.STDOUT)
        if not wait_port(self.lerobot_port, STARTUP_S, self.lerobot_server):
            self.close()
            raise RuntimeError(f"LeRobot's policy server did not start; see {folder / 'lerobot_server.log'}")

    def robot_args(self, prefix: str, seed: int, log: Path) -> list[str]:
        fields = {"task": self.args.task, "seed": seed, "fps": f"{self.args.fps:g}", "sim_cameras": "[front,wrist]",
                  "image_height": 64, "image_width": 64, "environment_state": "false", "clock": "first_read",
                  "episode_log": str(log), "episode_s": f"{self.episode_s:g}"}
        return [f"--{prefix}.{k}={v}" for k, v in fields.items()]

    def episode(self, stack: str, seed: int) -> tuple[EpisodeNumbers | None, str | None]:
        run_dir = self.folder / f"{stack.replace(' ', '_')}_{seed}"
        run_dir.mkdir(exist_ok=True)
        log = run_dir / "episode.json"
        log.unlink(missing_ok=True)
        if stack == "lerobot":
            err = self._lerobot_episode(seed, run_dir, log)
        else:
            err = self._our_episode(stack.split(" ", 1)[1], seed, run_dir, log)
        if err is None and not log.exists():
            err = f"the robot wrote no episode log; see {run_dir}"
        if err is not None:
            return None, err
        ep = episode_from_dir(run_dir, ours=stack != "lerobot", episode_s=self.episode_s)
        print(f"  {stack:<18} seed {seed}: success {ep.success}, hits {ep.hit_fraction:.2f}, {ep.commands} commands "
              f"({ep.rate_hz:.1f} Hz), empty periods {ep.empty_periods}, holds {ep.hold_ticks}, jerk {ep.rms_jerk:.0f}", flush=True)
        return ep, None

    def _lerobot_episode(self, seed: int, run_dir: Path, log: Path) -> str | None:
        argv = [sys.executable, "-m", "sim.lerobot_bench.launch", "client", "--robot.type=vla_sim_follower",
                *self.robot_args("robot", seed, log), f"--task={self.instruction}",
                f"--server_address=127.0.0.1:{self.lerobot_port}", "--policy_type=vla_async",
                f"--pretrained_name_or_path={self.policy_dir}", "--policy_device=cpu", "--client_device=cpu",
                f"--fps={self.args.fps:g}", *(f"--{k}={v}" for k, v in LEROBOT_CLIENT.items())]
        with (run_dir / "client.log").open("w") as out:
            proc = subprocess.Popen(argv, cwd=run_dir, env=self.env, stdout=out, stderr=subprocess.STDOUT)
            # LeRobot's client runs until interrupted: stop it (Ctrl-C, as a user would) once the episode is logged
            ended = wait_until(lambda: log.exists() or proc.poll() is not None, STARTUP_S + self.episode_s, 0.1)
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            finish(proc, 30.0)
        return None if ended and log.exists() else f"no episode log (client exit {proc.returncode}); see {run_dir}"

    def _our_episode(self, strategy: str, seed: int, run_dir: Path, log: Path) -> str | None:
        argv = [sys.executable, "-m", "robot_client", "--robot.kind=lerobot", f"--robot.fps={self.args.fps:g}",
                "--robot.lerobot.type=vla_sim_follower", "--robot.lerobot.units=radians",
                *self.robot_args("robot.lerobot", seed, log), f"--strategy.preset={strategy}",
                f"--network.host={self.ours.host}", f"--network.port={self.ours.port}",
                f"--duration_s={self.episode_s + 1.0:g}", "--stop_on_success=false",
                f"--log.path={run_dir / 'ticks.jsonl'}", "--log.live_status=false"]
        with (run_dir / "client.log").open("w") as out:
            proc = subprocess.Popen(argv, cwd=run_dir, env=self.env, stdout=out, stderr=subprocess.STDOUT)
            finish(proc, STARTUP_S + self.episode_s + 30.0)
        return None if proc.returncode == 0 else f"vla-async client exit {proc.returncode}; see {run_dir}"

    def close(self) -> None:
        if self.lerobot_server.poll() is None:
            self.lerobot_server.send_signal(signal.SIGINT)
        finish(self.lerobot_server, 15.0)
        self._lerobot_log.close()
        self.ours.stop()


def sim_native_to_policy_scale() -> list[float]:
    """LeRobot units → the model's units on the simulated follower (degrees → rad, gripper 0…100 → 0…1), from its
    calibration with the same function our robot.kind=lerobot adapter uses."""
    from lerobot_robot_vla_sim.vla_sim_follower import _RESOLUTION, sim_calibration
    from robot_client.lerobot_units import joint_units
    from sim import so101

    names = list(so101.JOINTS)
    motors = {n: ("range_0_100" if n == "gripper" else "degrees", _RESOLUTION) for n in names}
    units = joint_units(motors, sim_calibration(so101.LIMITS, names), [f"{n}.pos" for n in names], "radians")
    return units.scale.tolist()


def episode_from_dir(run_dir: Path, ours: bool, episode_s: float) -> EpisodeNumbers:
    """One episode's numbers from its run folder: the robot's episode.json, and for ours its tick log (holds, and
    the first tick planned by the policy: before it our client sends holds, LeRobot's sends nothing)."""
    log = json.loads((run_dir / "episode.json").read_text())
    if not ours:
        return episode_numbers(log)
    first_s, holds = our_tick_log(run_dir / "ticks.jsonl", episode_s)
    start = None if first_s is None else first_s - 0.5 / float(log["fps"])  # that tick's command, not the one before
    return episode_numbers(log, hold_ticks=holds, start_s=start)


def our_tick_log(tick_log: Path, episode_s: float) -> tuple[float | None, int]:
    """(time of the first tick commanded from a chunk, ticks held after it within the episode) from our client's
    per-tick log; holds before the first chunk are start-up, as LeRobot's wait for its first chunk is."""
    if not tick_log.exists():
        return None, 0
    first: float | None = None
    holds = 0
    for line in tick_log.read_text().splitlines():
        rec: dict[str, Any] = json.loads(line)
        t = float(rec.get("time_s", 0.0))
        if first is None and int(rec.get("source_request_id", -1)) >= 0:
            first = t
        elif first is not None and rec.get("stalled") and t <= episode_s:
            holds += 1
    return first, holds


def recompute(folder: Path) -> list[Row]:
    """The table again from a finished run's logs (`--recompute FOLDER`)."""
    rows: list[Row] = []
    for lat_dir in sorted(folder.glob("*ms"), key=lambda p: float(p.name[:-2])):
        stacks: dict[str, list[EpisodeNumbers]] = {}
        for run_dir in sorted(p for p in lat_dir.iterdir() if (p / "episode.json").exists()):
            stack = run_dir.name.rpartition("_")[0]
            log = json.loads((run_dir / "episode.json").read_text())
            stacks.setdefault(stack.replace("_", " ", 1), []).append(
                episode_from_dir(run_dir, ours=stack != "lerobot", episode_s=float(log["episode_s"])))
        rows += [Row(stack, float(lat_dir.name[:-2]), eps) for stack, eps in sorted(stacks.items())]
    return rows


# --------------------------------------------------------------------------------------------- processes
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float, proc: subprocess.Popen) -> bool:
    def open_() -> bool:
        if proc.poll() is not None:
            return True
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    return wait_until(open_, timeout_s, 0.2) and proc.poll() is None


def finish(proc: subprocess.Popen, timeout_s: float) -> None:
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10.0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
