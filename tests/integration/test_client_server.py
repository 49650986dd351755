"""The real-time client against a real policy server subprocess on 127.0.0.1 and the real-time sim arm."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mujoco")

from robot_client.loop import RealTimeClient  # noqa: E402
from robot_client.robots import make_robot_from_config  # noqa: E402
from robot_client.tick_log import TICK_FIELDS, read_tick_log  # noqa: E402
from vla_async.config import ClientConfig, RobotConfig, build_config  # noqa: E402
from vla_async.local_server import LocalServer, backend_args  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FPS = 30.0
ROBOT = RobotConfig(kind="sim", task="reach_jump", fps=FPS, render=False, cameras=[])
BACKEND = "linear"  # fast and real; the expert backend is exercised by the demo and the evaluator


def client_config(server: LocalServer, log_path: Path, **extra: object) -> ClientConfig:
    data: dict = {
        "network": {"host": server.host, "port": server.port, "request_timeout_s": 0.5},
        "robot": ROBOT.model_dump(),
        "strategy": {"preset": "vlash_rail"},
        "safety": {"watchdog_timeout_s": 0.5},
        "log": {"path": str(log_path), "print_summary": False, "live_status": False},
        "stop_on_success": False,
    }
    data.update(extra)
    return build_config(ClientConfig, data)


@pytest.mark.timeout(90)
def test_chunks_arrive_and_are_executed_at_rate(tmp_path: Path) -> None:
    robot = make_robot_from_config(ROBOT)
    server = LocalServer(backend_args(BACKEND, robot.spec), log_path=tmp_path / "server.log")
    config = client_config(server, tmp_path / "ticks.jsonl")
    with server, robot:
        summary = RealTimeClient(config, robot).run(duration_s=3.0)
    assert server.output().count("Traceback") == 0, server.output()
    rows = list(read_tick_log(tmp_path / "ticks.jsonl"))
    # every tick of the run is accounted for: executed or counted as missed, in order, no bursts
    assert len(rows) == summary.ticks
    ticks = [r["tick"] for r in rows]
    assert ticks == sorted(set(ticks))
    assert summary.ticks + summary.missed_ticks == int(3.0 * FPS)
    assert ticks[-1] < int(3.0 * FPS)
    for row in rows:
        assert tuple(row) == TICK_FIELDS
        assert len(row["command"]) == len(robot.spec.action_names)
    # chunks came back and drove the robot
    assert summary.chunks_received >= 2 and summary.chunks_executed >= 2
    assert summary.first_chunk_tick is not None
    executed = [r for r in rows if r["source_request_id"] >= 0]
    assert executed and all(r["observation_age_ticks"] is not None and r["observation_age_ticks"] >= 0
                            for r in executed)
    # with a fast backend the plan never runs dry once it has started
    assert summary.stalls_after_first_chunk == 0
    assert summary.watchdog_ticks == 0
    assert summary.errors == 0


@pytest.mark.timeout(90)
def test_server_killed_mid_run_client_holds_and_comes_to_rest(tmp_path: Path) -> None:
    robot = make_robot_from_config(ROBOT)
    server = LocalServer(backend_args(BACKEND, robot.spec), log_path=tmp_path / "server.log")
    config = client_config(server, tmp_path / "ticks.jsonl")
    with server, robot:
        client = RealTimeClient(config, robot)
        result: dict = {}
        runner = threading.Thread(target=lambda: result.setdefault("summary", client.run(duration_s=4.0)))
        runner.start()
        deadline = time.monotonic() + 10
        while (client.stats is None or client.stats.chunks_received < 2) and time.monotonic() < deadline:
            time.sleep(0.02)
        killed_at_tick = client.last_record.tick if client.last_record else 0
        server.kill()
        runner.join(30)
        assert not runner.is_alive()
    summary = result["summary"]  # the loop ended normally: no exception escaped
    assert summary.chunks_received >= 2
    rows = list(read_tick_log(tmp_path / "ticks.jsonl"))
    after = [r for r in rows if r["tick"] > killed_at_tick + 5]
    assert after, "the loop kept ticking after the server died"
    # requests to the dead server fail (deadline) instead of hanging the loop
    assert summary.errors >= 1
    # the plan ran out: the client held, then the watchdog took over
    assert any(r["stalled"] or r["watchdog"] for r in after)
    assert any(r["watchdog"] for r in after)
    # ... and brought the arm to rest: the last commands no longer change
    tail = np.array([r["command"] for r in rows[-5:]])
    assert np.abs(np.diff(tail, axis=0)).max() < 1e-6
