"""Tiny real torch/ONNX policies served by the real PolicyServer to real PolicyClients over ZeroMQ."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from policy_server.backend import PolicyInput, create_backend  # noqa: E402
from policy_server.bench import RobotLoad  # noqa: E402
from policy_server.server import PolicyServer  # noqa: E402
from policy_server.tiny_models import save_tiny_policy, tiny_spec  # noqa: E402
from vla_async.config import BackendConfig, BatchingConfig, NetworkConfig, ServerConfig  # noqa: E402
from vla_async.messages import ErrorCode, ErrorMessage, Observation  # noqa: E402
from vla_async.transport import PolicyClient, ReceivedChunk  # noqa: E402

pytestmark = [pytest.mark.integration]
SPEC = tiny_spec(cameras=("front",), image_size=(32, 32), chunk_length=20)


def serve(backend_name: str, path, max_batch: int = 8, max_wait_ms: float = 2.0) -> PolicyServer:
    config = ServerConfig(network=NetworkConfig(port=0), batching=BatchingConfig(max_batch=max_batch,
                                                                                  max_wait_ms=max_wait_ms))
    return PolicyServer(config, create_backend(BackendConfig(name=backend_name, path=str(path))), port=0)


def connect(server: PolicyServer, n: int) -> tuple[list[PolicyClient], list[RobotLoad]]:
    loads = [RobotLoad.for_policy(SPEC, seed=i) for i in range(n)]
    clients = [PolicyClient(NetworkConfig(port=server.port, request_timeout_s=10.0), f"r{i}", load.robot_spec)
               for i, load in enumerate(loads)]
    for c in clients:
        assert c.connect(timeout_s=10.0).policy_spec == SPEC
    return clients, loads


def reply(client: PolicyClient, timeout_s: float = 15.0) -> ReceivedChunk | ErrorMessage:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        client.wait(0.2)
        items = client.poll()
        if items:
            assert len(items) == 1
            return items[0]
    raise AssertionError("no reply")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        "torch": save_tiny_policy(root / "torch", SPEC, fmt="state_dict", seed=1),
        "onnx": save_tiny_policy(root / "onnx", SPEC, fmt="onnx", seed=1),
        "nan": save_tiny_policy(root / "nan", SPEC, fmt="onnx", fault="nan"),
        "crash": save_tiny_policy(root / "crash", SPEC, fmt="state_dict", fault="raise_on_large_state"),
    }


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend_name", ["torch", "onnx"])
def test_served_chunks_match_the_model_and_use_the_rollforward_state(models, backend_name):
    reference = create_backend(BackendConfig(name="torch", path=str(models["torch"])))
    with serve(backend_name, models[backend_name]) as server:
        clients, loads = connect(server, 2)
        try:
            for i, (client, load) in enumerate(zip(clients, loads, strict=True)):
                rolled = load.state + 0.3
                client.submit(Observation(request_id=1, tick=10 + i, exec_tick=14 + i, state=load.state,
                                          images=load.images, rollforward_state=rolled))
                got = reply(client)
                assert isinstance(got, ReceivedChunk), got
                assert got.chunk.request_id == 1 and got.chunk.start_tick == 14 + i
                want = reference.infer([PolicyInput(state=rolled, images=load.images)])[0]
                np.testing.assert_allclose(got.chunk.actions, want, atol=1e-4)
                t = got.chunk.timing
                assert 0 <= t.model_ms <= t.total_ms and t.batch_size >= 1
        finally:
            for c in clients:
                c.close()


@pytest.mark.timeout(60)
def test_several_robots_are_batched_and_all_served(models):
    with serve("torch", models["torch"], max_batch=4, max_wait_ms=300.0) as server:
        clients, loads = connect(server, 4)
        try:
            sizes = []
            for round_ in range(3):
                for client, load in zip(clients, loads, strict=True):
                    client.submit(load.observation(round_))
                for client in clients:
                    got = reply(client)
                    assert isinstance(got, ReceivedChunk) and got.chunk.request_id == round_
                    sizes.append(got.chunk.timing.batch_size)
            assert max(sizes) > 1  # observations from different robots shared a forward pass
            assert all(s["served"] == 3 for s in server.session_stats())  # nobody starved
        finally:
            for c in clients:
                c.close()


@pytest.mark.timeout(60)
def test_nan_output_is_an_error_for_the_client(models):
    with serve("onnx", models["nan"]) as server:
        (client,), (load,) = connect(server, 1)
        try:
            client.submit(load.observation(1))
            got = reply(client)
            assert isinstance(got, ErrorMessage) and got.code == ErrorCode.BACKEND_ERROR
            assert "NaN" in got.message and got.request_id == 1
        finally:
            client.close()


@pytest.mark.timeout(60)
def test_crash_inside_model_errors_one_robot_and_the_server_keeps_serving(models):
    with serve("torch", models["crash"], max_batch=1) as server:
        clients, loads = connect(server, 2)
        try:
            poison = Observation(request_id=1, tick=0, exec_tick=0, state=np.full(6, 1e4, np.float32),
                                 images=loads[0].images)
            clients[0].submit(poison)
            got = reply(clients[0])
            assert isinstance(got, ErrorMessage) and got.code == ErrorCode.BACKEND_ERROR
            assert "simulated crash" in got.message and "Traceback" not in got.message
            for client, load in zip(clients, loads, strict=True):  # both robots go on being served
                client.submit(load.observation(2))
                ok = reply(client)
                assert isinstance(ok, ReceivedChunk) and ok.chunk.request_id == 2
        finally:
            for c in clients:
                c.close()
