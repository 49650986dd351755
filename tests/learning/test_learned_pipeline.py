"""CI-sized round trip of a learned policy: `vla-async record` 2 short episodes → `vla-async train` a
few steps → `vla-async export-onnx` → the real PolicyServer (onnx backend) over 127.0.0.1 → one chunk
for a real sim observation, equal to what the torch policy computes for the same input."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("mujoco")
pytest.importorskip("pyarrow")
pytest.importorskip("pandas")

from policy_server.backend import PolicyInput, create_backend  # noqa: E402
from policy_server.model_io import ModelCard  # noqa: E402
from policy_server.server import PolicyServer  # noqa: E402
from vla_async.cli import main as cli_main  # noqa: E402
from vla_async.config import BackendConfig, NetworkConfig, ServerConfig  # noqa: E402
from vla_async.messages import ErrorMessage, Observation  # noqa: E402
from vla_async.policy_input import uses_exec_offset
from vla_async.transport import PolicyClient, ReceivedChunk  # noqa: E402

pytestmark = [pytest.mark.integration]
SIZE, H = 32, 10


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("learned") / "demos"
    rc = cli_main(["record", "--task", "reach_jump", "--episodes", "2", "--workers", "1", "--out", str(root),
                   "--cameras", "front", "--image-size", str(SIZE), "--max-seconds", "0.5", "--noise-fraction", "1"])
    assert rc == 0
    return root


def train_and_export(dataset, out, *extra) -> tuple:
    assert cli_main(["train", "--dataset", str(dataset), "--out", str(out), "--steps", "3", "--batch-size", "4",
                     "--chunk-length", str(H), "--flow-steps", "3", "--eval-every", "2", "--no-progress", *extra]) == 0
    onnx = out / "onnx" / "policy.onnx"
    assert cli_main(["export-onnx", "--backend", "torch", "--path", str(out / "policy.pt"), "--out", str(onnx)]) == 0
    return out / "policy.pt", onnx


def sim_observation():
    import sim

    robot = sim.make_robot("reach_jump", seed=7, cameras=("front",), image_size=(SIZE, SIZE))
    robot.connect()
    try:
        return robot.spec, robot.get_observation(), robot.instruction
    finally:
        robot.disconnect()


def served(onnx_path, observations: list[Observation], robot_spec) -> list[ReceivedChunk | ErrorMessage]:
    """Send the observations one after the other over one connection; the reply to each."""
    config = ServerConfig(network=NetworkConfig(port=0))
    backend = create_backend(BackendConfig(name="onnx", path=str(onnx_path)))
    replies = []
    with PolicyServer(config, backend, port=0) as server:
        client = PolicyClient(NetworkConfig(port=server.port, request_timeout_s=10.0), "arm", robot_spec)
        try:
            client.connect(timeout_s=10.0)
            for observation in observations:
                client.submit(observation)
                replies.append(_reply(client))
        finally:
            client.close()
    return replies


def _reply(client: PolicyClient) -> ReceivedChunk | ErrorMessage:
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline:
        client.wait(0.2)
        items = client.poll()
        if items:
            return items[0]
    raise AssertionError("no reply from the server")


@pytest.mark.timeout(240)
@pytest.mark.parametrize("variant", [["--head", "flow"],
                                     ["--head", "regression", "--vlash", "0.1,0.2", "--exec-offset-input"],
                                     ["--head", "regression", "--colour-keypoints", "2", "--aux-weight", "1",
                                      "--ema", "0.9", "--augment-shift", "2"]])
def test_record_train_export_serve_one_chunk(dataset, tmp_path, variant):
    info = json.loads((dataset / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_episodes"] == 2 and info["total_frames"] == 30
    torch_path, onnx_path = train_and_export(dataset, tmp_path / "run", *variant)
    assert (tmp_path / "run" / "training_curve.png").stat().st_size > 0
    card = ModelCard.from_json((onnx_path.parent / "policy.spec.json").read_text())
    has_offset = "--exec-offset-input" in variant
    assert [t.source for t in card.inputs] == ["state", "image:front", "task"] + (["exec_offset_s"] if has_offset else [])
    assert card.spec.chunk_length == H and card.spec.fps == 30.0
    assert card.model["training"]["scene_seeds"] == {"reach_jump": "100000-100001"}  # record's default seed, 2 episodes
    assert uses_exec_offset(card.spec) == has_offset  # the server sends the offset to this model or never
    md = (onnx_path.parent / "policy.card.md").read_text()
    assert ("is an input" in md) == has_offset and "touch the magenta ball" in md

    robot_spec, obs, instruction = sim_observation()
    observation = Observation(request_id=1, tick=3, exec_tick=9, state=obs.state, images=obs.images,
                              task=instruction, deadline_ms=10_000)
    (got,) = served(onnx_path, [observation], robot_spec)
    assert isinstance(got, ReceivedChunk), got
    assert got.chunk.actions.shape == (H, 6) and np.all(np.isfinite(got.chunk.actions))
    reference = create_backend(BackendConfig(name="torch", path=str(torch_path)))
    want = reference.infer([PolicyInput(state=obs.state, images=obs.images, task=instruction, exec_offset_s=6 / 30)])[0]
    np.testing.assert_allclose(got.chunk.actions, want, atol=1e-4)
    if has_offset:  # the offset reaches the model
        other = reference.infer([PolicyInput(state=obs.state, images=obs.images, task=instruction, exec_offset_s=0.0)])[0]
        assert not np.allclose(other, want, atol=1e-6)


@pytest.mark.timeout(240)
def test_an_unknown_instruction_is_a_clear_error_and_the_server_survives(dataset, tmp_path):
    _, onnx_path = train_and_export(dataset, tmp_path / "run", "--head", "regression")
    robot_spec, obs, instruction = sim_observation()
    bad = Observation(request_id=1, tick=0, exec_tick=0, state=obs.state, images=obs.images, task="make coffee")
    good = Observation(request_id=2, tick=1, exec_tick=1, state=obs.state, images=obs.images, task=instruction)
    got_bad, got_good = served(onnx_path, [bad, good], robot_spec)
    assert isinstance(got_bad, ErrorMessage) and "none of the words" in got_bad.message and got_bad.request_id == 1
    assert isinstance(got_good, ReceivedChunk) and got_good.chunk.request_id == 2


@pytest.mark.timeout(240)
def test_vla_async_eval_runs_a_learned_onnx_policy(dataset, tmp_path, capsys):
    _, onnx_path = train_and_export(dataset, tmp_path / "run", "--head", "flow")
    capsys.readouterr()
    rc = cli_main(["eval", "--task", "reach_jump", "--strategy", "vlash_rail", "--latency_ms", "200", "--seeds", "100000",
                   "--quiet", "--max_duration_s=1.0", "--backend.name=onnx", f"--backend.path={onnx_path}",
                   "--json", str(tmp_path / "eval.json")])
    assert rc == 0
    rows = json.loads((tmp_path / "eval.json").read_text())["rows"]
    assert {r["strategy"] for r in rows} == {"sync", "vlash_rail"} and all(r["episodes"] == 1 for r in rows)
    out = capsys.readouterr().out
    assert "| reach_jump | vlash_rail |" in out
    # seed 100000 is one of the two recorded scenes the policy was trained on: the report says it is not held out
    assert "not held out" in out and "reach_jump: 1 of the 1 seeds (100000; trained on 100000-100001)" in out
    assert "trained on 100000-100001" in json.loads((tmp_path / "eval.json").read_text())["seen_scenes_note"]
    assert cli_main(["eval", "--task", "reach_jump", "--strategy", "vlash_rail", "--latency_ms", "0", "--seeds", "1000",
                     "--quiet", "--reference=false", "--max_duration_s=0.2", "--backend.name=onnx",
                     f"--backend.path={onnx_path}"]) == 0
    assert "not held out" not in capsys.readouterr().out


@pytest.mark.timeout(300)
def test_realtime_engine_serves_the_learned_policy_to_a_rendering_client(dataset, tmp_path):
    """The real-time engine passes the backend to the server; the arm renders the cameras the policy declares."""
    from sim.eval.grid import load_eval_config, resolve_strategy
    from sim.eval.realtime_engine import run_realtime_episode
    from vla_async.config import InjectedLatencyConfig

    _, onnx_path = train_and_export(dataset, tmp_path / "run", "--head", "regression")
    clients = []
    log = run_realtime_episode("reach_jump", resolve_strategy(load_eval_config(None), "vlash_rail"),
                               InjectedLatencyConfig(distribution="constant", mean_ms=50.0, jitter_ms=0.0), 0,
                               max_duration_s=2.0, backend=BackendConfig(name="onnx", path=str(onnx_path)),
                               on_client=clients.append, workdir=tmp_path / "live")
    (client,) = clients
    assert client.policy_spec.name == "visuomotor-regression"  # the learned policy, not the expert
    assert [c.name for c in client.policy_spec.cameras] == ["front"] and [c.name for c in client.robot.spec.cameras] == ["front"]
    assert any(r.accepted for r in log.requests)  # chunks came back and were used
    assert np.all(np.isfinite(log.command))


def test_one_ffmpeg_process_decodes_all_episodes_like_one_process_each(dataset):
    from policy_server.learning.demos import camera_frames, decode_video, decode_videos, load_demos

    paths = sorted((dataset / "videos" / "observation.images.front").rglob("*.mp4"))
    assert len(paths) == 2
    each = [decode_video(p) for p in paths]
    np.testing.assert_array_equal(decode_videos(paths), np.concatenate(each))
    demos = load_demos(dataset)
    np.testing.assert_array_equal(demos.images["front"], np.concatenate(each)[: len(demos)])
    info = json.loads((dataset / "meta" / "info.json").read_text())
    import pyarrow.parquet as pq

    episodes = pq.read_table(dataset / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    short = np.array([len(each[0]) - 1, len(each[1]) - 2])  # counts that do not add up: file by file, cut
    got = camera_frames(dataset, info, episodes, "front", short)
    np.testing.assert_array_equal(got[1], each[1][: short[1]])
