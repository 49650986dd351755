"""Real-time engine: `python -m policy_server` (the expert, or the evaluated policy backend, + injected
latency) as a subprocess, the real-time client (`robot_client.loop.RealTimeClient`) on the simulated arm in real-time mode,
both over ZeroMQ on 127.0.0.1; the client's per-tick JSONL log becomes an `EpisodeLog`.

The client log carries each request's capture and exec tick and, per applied chunk, its request
id, the actions dropped as late and whether the scheduler accepted it; commanded and measured tool
positions are reconstructed by forward kinematics of the logged command and state. Latency is
tick-quantised (capture tick → the tick that applied the chunk). The loop checks task success every
0.2 s, so real-time completion times have that resolution.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sim.eval.episode_log import EpisodeLog, EpisodeRecorder
from sim.eval.grid import RealtimeConfig
from sim.eval.virtual_engine import episode_meta
from vla_async.config import (
    BackendConfig,
    ClientConfig,
    InjectedLatencyConfig,
    LogConfig,
    NetworkConfig,
    RobotConfig,
    SafetyConfig,
    StrategyConfig,
)
from vla_async.config.schema import CameraConfig


def server_overrides(latency: InjectedLatencyConfig, chunk_length: int, backend: BackendConfig | None = None) -> list[str]:
    """`python -m policy_server` arguments: the backend (the expert unless given) with the cell's injected latency."""
    return [
        *backend_overrides(backend, chunk_length),
        f"--injected_latency.distribution={latency.distribution}", f"--injected_latency.mean_ms={latency.mean_ms}",
        f"--injected_latency.jitter_ms={latency.jitter_ms}", f"--injected_latency.seed={latency.seed}",
        "--log_level=warning",
    ]


def backend_overrides(backend: BackendConfig | None, chunk_length: int) -> list[str]:
    if backend is None:
        return ["--backend.name=expert", f"--backend.chunk_length={chunk_length}"]
    out = [f"--backend.name={backend.name}", f"--backend.device={backend.device}", f"--backend.dtype={backend.dtype}",
           f"--backend.chunk_length={backend.chunk_length}"]
    if backend.path is not None:
        out.append(f"--backend.path={Path(backend.path).resolve()}")
    out += [f"--backend.options.{key}={json.dumps(value)}" for key, value in backend.options.items()]
    return out


def client_config(task: str, strategy: StrategyConfig, seed: int, port: int, fps: float, max_duration_s: float,
                  safety: SafetyConfig | None, log_path: Path, cameras: tuple[str, ...] = (),
                  image_size: tuple[int, int] = (224, 224)) -> ClientConfig:
    return ClientConfig(
        network=NetworkConfig(port=port), strategy=strategy, safety=safety or SafetyConfig(),
        robot=RobotConfig(kind="sim", task=task, seed=seed, fps=fps, cameras=list(cameras), render=bool(cameras),
                          camera=CameraConfig(height=image_size[0], width=image_size[1])),
        log=LogConfig(path=str(log_path), print_summary=False, live_status=False),
        duration_s=max_duration_s, stop_on_success=True,
    )


def policy_cameras(backend: BackendConfig | None, cameras: Sequence[str] | None, image_size: int | None,
                   fps: float) -> tuple[tuple[str, ...], tuple[int, int]]:
    """The cameras (and image size) the robot must render for `backend`, read from its spec as the
    virtual engine does (no cameras for the expert)."""
    if backend is None:
        return (), (224, 224)
    from sim.eval.policy_source import BackendSource

    source = BackendSource(backend, cameras, image_size, fps)
    try:
        return source.cameras, source.image_size
    finally:
        source.close()


def run_realtime_episode(
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
    realtime: RealtimeConfig | None = None,
    workdir: str | Path | None = None,
    on_client: Callable[[Any], None] | None = None,
    linger_s: float = 0.0,
    backend: BackendConfig | None = None,
    cameras: Sequence[str] | None = None,
    image_size: int | None = None,
) -> EpisodeLog:
    """One episode with a fresh server process and the real-time client in this process.

    The server runs `backend` (the scripted expert when None); the arm renders the cameras its spec
    declares (or `cameras`, at `image_size`), only for the observations the client sends.

    `on_client(client)` is called before the loop starts (e.g. to show `client.status_line()` live, or
    to film `client.robot`). After the episode the arm keeps holding its last command for `linger_s`
    (the world keeps running; the task status is read before that, so metrics do not depend on it).
    """
    import sim
    from robot_client.loop import RealTimeClient
    from vla_async.local_server import LocalServer

    del server_workers  # the real server has one inference worker
    realtime = realtime or RealtimeConfig()
    cams, size = policy_cameras(backend, cameras, image_size, fps)
    latency = latency.model_copy(update={"seed": latency.seed * 100_003 + seed})
    with tempfile.TemporaryDirectory(prefix="vla-eval-") as tmp:
        base = Path(workdir) if workdir else Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        log_path = base / f"{task}_{strategy.name}_{latency.mean_ms:.0f}ms_seed{seed}.jsonl"
        with LocalServer(server_overrides(latency, chunk_length, backend), log_path=base / "server.log",
                         startup_timeout_s=realtime.startup_timeout_s) as server:
            cfg = client_config(task, strategy, seed, server.port, fps, max_duration_s, safety, log_path, cams, size)
            robot = sim.make_robot(task, mode="realtime", fps=fps, seed=seed, cameras=cams, image_size=size,
                                   render=bool(cams))
            with robot:
                client = RealTimeClient(cfg, robot, connect_timeout_s=realtime.startup_timeout_s)
                if on_client is not None:
                    on_client(client)
                client.run()
                status = robot.task_status()
                if linger_s > 0:
                    time.sleep(linger_s)
                meta = episode_meta(task, strategy, latency, seed, fps, "realtime")
                return log_from_client_jsonl(log_path, robot, meta, status)


def log_from_client_jsonl(path: str | Path, robot: object, meta: dict, status: object) -> EpisodeLog:
    """Convert the client's tick log (robot_client.tick_log) into an EpisodeLog."""
    from robot_client.tick_log import read_tick_log

    rows = list(read_tick_log(path))
    spec = robot.spec  # type: ignore[attr-defined]
    fk = robot.tool_position_for  # type: ignore[attr-defined]
    fps = float(spec.fps)
    rec = EpisodeRecorder(meta, fps, ~np.asarray(spec.stepwise_mask, dtype=bool))
    for row in rows:
        k = int(row["tick"])
        for request_id, dropped, accepted in row.get("arrivals", ()):
            req = rec.requests.get(int(request_id))
            if req is not None:
                req.arrived(k, (k - req.capture_tick) / fps, bool(accepted), int(dropped))
        command, state = np.asarray(row["command"]), np.asarray(row["state"])
        rec.tick(tick=k, command=command, state=state, commanded_tool=fk(command), measured_tool=fk(state),
                 stalled=row["stalled"], watchdog=row["watchdog"], source_request_id=row["source_request_id"],
                 delay_ticks=row["delay_ticks"], rollforward_error=row["rollforward_error"],
                 client_cost_s=float(row["work_ms"]) / 1000.0)
        if int(row.get("request_id", -1)) >= 0:
            rec.request(int(row["request_id"]), k, int(row["request_exec_tick"]))
    rec.add_events(getattr(status, "events", []))
    rec.task_metrics = dict(getattr(status, "metrics", {}) or {})
    success = bool(getattr(status, "success", False))
    completion = (int(rows[-1]["tick"]) + 1) / fps if success and rows else None
    return rec.finish(success, completion)
