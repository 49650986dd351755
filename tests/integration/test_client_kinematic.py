"""The real-time loop with a real server subprocess (linear backend) and the light in-process 14-joint arm.

Runs without MuJoCo; covers a 14-joint arm end to end, the per-tick log and stop().
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from robot_client.kinematic_robot import KinematicRobot, kinematic_spec
from robot_client.loop import RealTimeClient
from robot_client.tick_log import read_tick_log
from vla_async.config import ClientConfig, build_config
from vla_async.local_server import LocalServer

pytestmark = [pytest.mark.integration]


def make_config(server: LocalServer, log_path: Path) -> ClientConfig:
    return build_config(ClientConfig, {
        "network": {"host": server.host, "port": server.port},
        "strategy": {"preset": "vlash_rail"},
        "log": {"path": str(log_path), "print_summary": False, "live_status": False},
        "stop_on_success": False,
    })


@pytest.mark.timeout(60)
def _stop_after_ticking(client: RealTimeClient, seconds: float, timeout_s: float = 60.0) -> None:
    """Stop the client `seconds` after its first tick (connecting may take a while on a loaded machine)."""
    end = time.monotonic() + timeout_s
    while getattr(client, "last_record", None) is None and time.monotonic() < end:
        time.sleep(0.01)
    time.sleep(seconds)
    client.stop()


def test_fourteen_joint_arm_follows_server_chunks_and_stops_on_request(tmp_path: Path) -> None:
    server = LocalServer(["--backend.name=linear", "--backend.options.cameras=[]"],
                           log_path=tmp_path / "server.log")
    robot = KinematicRobot(kinematic_spec(14, 50.0))
    config = make_config(server, tmp_path / "ticks.jsonl")
    with server, robot:
        client = RealTimeClient(config, robot, connect_timeout_s=20)
        stopper = threading.Thread(target=_stop_after_ticking, args=(client, 2.0), daemon=True)
        stopper.start()
        summary = client.run(duration_s=30.0)  # stop() ends it long before
        stopper.join(5)
    assert 0 < summary.ticks + summary.missed_ticks < 30 * 50  # stop() ended the run early
    rows = list(read_tick_log(tmp_path / "ticks.jsonl"))
    assert len(rows) == summary.ticks
    assert summary.chunks_received >= 1 and summary.first_chunk_tick is not None
    assert summary.stalls_after_first_chunk == 0
    # after the first chunk, commands come from chunks and the arm moved toward them
    first = summary.first_chunk_tick
    executed = [r for r in rows if r["tick"] >= first]
    assert all(r["source_request_id"] >= 0 for r in executed)
    assert all(len(r["command"]) == 14 and len(r["state"]) == 14 for r in rows)
    moved = np.abs(np.array(rows[-1]["state"]) - np.array(rows[0]["state"])).max()
    assert moved > 1e-3
    # the observation age of an executed action counts ticks since its capture
    ages = [r["observation_age_ticks"] for r in executed]
    assert all(a is not None and a >= 0 for a in ages)
