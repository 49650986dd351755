"""A real server streams a streaming flow policy's chunks to a real client on 127.0.0.1: the first final rows as
a part, then the rest, same request id and start tick; together they are the chunk the server sends whole to a
request that did not ask for a stream; the real-time client fuses them (tiny torch policy, 3 joints, bounded)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from policy_server.server import PolicyServer  # noqa: E402
from robot_client.kinematic_robot import KinematicRobot, kinematic_spec  # noqa: E402
from robot_client.loop import RealTimeClient  # noqa: E402
from vla_async.config import BackendConfig, ClientConfig, NetworkConfig, ServerConfig, build_config  # noqa: E402
from vla_async.messages import ErrorMessage, Observation  # noqa: E402
from vla_async.reference_specs import joint_names  # noqa: E402
from vla_async.scheduler import ActionScheduler  # noqa: E402
from vla_async.specs import streaming_plan  # noqa: E402
from vla_async.transport import PolicyClient, ReceivedChunk  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
H, A = 12, 3


def _policy(tmp_path: Path) -> Path:
    import torch

    from policy_server.learning.model import VisuomotorPolicy
    from policy_server.learning.train import FACTORY
    from policy_server.model_io import STATE_KEY, ModelCard, TensorSpec, write_card
    from vla_async.specs import PolicySpec

    kwargs = dict(state_dim=A, chunk_length=H, cameras=[], vocab_size=0, head="flow", flow_steps=6, width=48, seed=3,
                  streaming=True)
    m = VisuomotorPolicy(**kwargs)
    m.set_normalisation(torch.zeros(A), torch.ones(A), torch.zeros(H, A), torch.full((H, A), 0.3))
    names = joint_names(A)
    path = tmp_path / "policy.pt"
    torch.save(m.state_dict(), path)
    spec = PolicySpec(name="tiny-stream", state_names=names, action_names=names, chunk_length=H, fps=30.0)
    write_card(path, ModelCard(spec=spec, inputs=(TensorSpec(STATE_KEY, "state", (A,)),),
                               model={"factory": FACTORY, "kwargs": kwargs}))
    return path


def _server(tmp_path: Path, latency_ms: float = 150.0) -> PolicyServer:
    config = ServerConfig(backend=BackendConfig(name="torch", path=str(_policy(tmp_path)),
                                                options={"threads": 1, "stream_first_rows": 4}))
    config = config.model_copy(update={"injected_latency": config.injected_latency.model_copy(
        update={"mean_ms": latency_ms, "distribution": "constant", "jitter_ms": 0.0})})
    return PolicyServer(config, port=0).start()


def _replies(client: PolicyClient, rid: int, want_final: bool = True) -> list:
    got: list = []
    for _ in range(300):  # 30 s at most
        client.wait(0.1)
        for item in client.poll():
            assert not isinstance(item, ErrorMessage), item
            got.append(item)
        if got and got[-1].chunk.final:
            return got
    raise AssertionError(f"request {rid}: no final part within 30 s (got {len(got)})")


def test_a_real_server_streams_parts_that_make_up_the_whole_chunk(tmp_path: Path) -> None:
    server = _server(tmp_path)
    robot = kinematic_spec(A, 30.0)
    try:
        with PolicyClient(NetworkConfig(host="127.0.0.1", port=server.port), "streamer", robot) as client:
            welcome = client.connect(timeout_s=30)
            plan = streaming_plan(welcome.policy_spec)
            assert plan is not None and 4 <= plan.first_rows < H
            state = np.array([0.1, -0.2, 0.3], np.float32)
            client.submit(Observation(1, 10, 12, state, stream=True))
            parts = _replies(client, 1)
            client.submit(Observation(2, 10, 12, state))
            whole = _replies(client, 2)
        bounds = [0, *(rows for _, rows in plan.sends)]  # the first final rows, then each later step's new rows
        assert [(p.chunk.request_id, p.chunk.start_tick, p.chunk.row_offset, p.chunk.end_tick - 12, p.chunk.final)
                for p in parts] == [(1, 12, lo, hi, hi == H) for lo, hi in zip(bounds, bounds[1:], strict=False)]
        assert len(parts) >= 2 and bounds[1] == plan.first_rows
        assert all(isinstance(p, ReceivedChunk) for p in parts)
        assert [p.received_at for p in parts] == sorted(p.received_at for p in parts)
        assert len(whole) == 1 and not whole[0].chunk.is_part
        np.testing.assert_allclose(np.concatenate([p.chunk.actions for p in parts]), whole[0].chunk.actions, atol=1e-6)
        sched = ActionScheduler(build_config(ClientConfig, {"strategy": {"preset": "vlash_rail_stream"}}).strategy,
                                robot, H, None, welcome.policy_spec)
        req = sched.on_tick(0, np.zeros(A)).request
        assert req.stream
        for i, p in enumerate(parts):
            chunk = p.chunk.__class__(req.request_id, req.exec_tick, p.chunk.actions, row_offset=p.chunk.row_offset,
                                      final=p.chunk.final)
            assert sched.on_chunk(chunk, k_now=1 + i).accepted
        assert sched.stats.parts == len(parts) and sched.stats.chunks == 1 and sched.in_flight == 0
        assert server.fatal is None and server.stats["chunks"] == 2
    finally:
        server.stop()


def test_the_real_time_client_runs_on_streamed_chunks(tmp_path: Path) -> None:
    server = _server(tmp_path, latency_ms=200.0)
    try:
        cfg = build_config(ClientConfig, {
            "network": {"host": "127.0.0.1", "port": server.port}, "strategy": {"preset": "vlash_rail_stream"},
            "log": {"path": str(tmp_path / "ticks.jsonl"), "print_summary": False, "live_status": False},
            "stop_on_success": False,
        })
        with KinematicRobot(kinematic_spec(A, 30.0)) as robot:
            client = RealTimeClient(cfg, robot, connect_timeout_s=30)

            def stop_after_chunks() -> None:  # bounded: 60 s at most, not a timing assertion
                for _ in range(600):
                    if server.stats["chunks"] >= 4:
                        break
                    time.sleep(0.1)
                client.stop()

            threading.Thread(target=stop_after_chunks, daemon=True).start()
            summary = client.run(duration_s=60.0)
        assert summary.chunks_received >= 8  # parts: at least two per chunk
        assert client.transport_failure is None and server.fatal is None
    finally:
        server.stop()
