"""The real-time client sends its committed action prefix to a server whose policy accepts one (strategy rtc, and the
default vlash_rail, whose `action_prefix: auto` reads the policy's spec from the handshake), and never with a strategy
that does not ask for it; in-process server on 127.0.0.1, light 14-joint arm."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from policy_server.server import PolicyServer
from robot_client.kinematic_robot import KinematicRobot, kinematic_spec
from robot_client.loop import RealTimeClient
from tests.policy_server.test_server_action_prefix import PrefixInpainting
from vla_async.config import BackendConfig, ClientConfig, ServerConfig, build_config

pytestmark = [pytest.mark.integration]


def _stop_after(client: RealTimeClient, backend: PrefixInpainting, requests: int) -> None:
    """Stop the client once the backend has served `requests` requests (bounded: 60 s at most)."""
    for _ in range(600):
        if len(backend.seen) > requests:
            break
        time.sleep(0.1)
    client.stop()


def _run(preset: str, tmp_path: Path) -> list:
    config = ServerConfig(backend=BackendConfig(name="linear", options={"cameras": [], "chunk_length": 30}))
    backend = PrefixInpainting(config.backend)
    server = PolicyServer(config, backend, port=0).start()
    try:
        client_cfg = build_config(ClientConfig, {
            "network": {"host": "127.0.0.1", "port": server.port}, "strategy": {"preset": preset},
            "log": {"path": str(tmp_path / f"{preset}.jsonl"), "print_summary": False, "live_status": False},
            "stop_on_success": False,
        })
        with KinematicRobot(kinematic_spec(14, 50.0)) as robot:
            client = RealTimeClient(client_cfg, robot, connect_timeout_s=30)
            stopper = threading.Thread(target=_stop_after, args=(client, backend, 6), daemon=True)
            stopper.start()
            summary = client.run(duration_s=60.0)  # stopped once the server computed 6 chunks (not timed)
        assert summary.chunks_received >= 3
    finally:
        server.stop()
    return backend.seen[1:]  # [0] is the warm-up


@pytest.mark.timeout(150)
@pytest.mark.parametrize("preset", ["rtc", "vlash_rail"])
def test_the_client_sends_the_committed_prefix_to_a_policy_that_takes_one_and_lag_rail_does_not(
        tmp_path: Path, preset: str) -> None:
    seen = _run(preset, tmp_path)
    with_prefix = [(p, frozen) for p, frozen in seen if p is not None]
    assert len(with_prefix) >= 2  # every request after the first chunk carries the plan
    for prefix, frozen in with_prefix:
        assert prefix.shape[1] == 14 and 1 <= len(prefix) <= 30 and 1 <= frozen <= len(prefix)
    if preset == "vlash_rail":
        assert all(p is None for p, _ in _run("lag_rail", tmp_path))
