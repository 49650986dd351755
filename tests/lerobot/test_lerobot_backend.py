"""LeRobotBackend on tiny ACT and Diffusion policies built from config with random weights (no download),
saved with their processors, loaded offline and served through the real server to a real client."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("lerobot")
torch = pytest.importorskip("torch")

from lerobot.configs.types import FeatureType, PolicyFeature  # noqa: E402
from lerobot.policies.factory import get_policy_class, make_policy_config, make_pre_post_processors  # noqa: E402

from policy_server.backend import BackendError, PolicyInput, create_backend  # noqa: E402
from policy_server.model_io import ModelCard, standard_inputs, write_card  # noqa: E402
from policy_server.tiny_models import tiny_spec  # noqa: E402
from vla_async.config import BackendConfig  # noqa: E402

pytestmark = [pytest.mark.lerobot]
SPEC = tiny_spec(cameras=("front",), image_size=(64, 64), chunk_length=10)
KW = {
    "act": dict(chunk_size=10, n_action_steps=10, dim_model=32, n_heads=2, dim_feedforward=64,
                n_encoder_layers=1, n_decoder_layers=1, n_vae_encoder_layers=1, latent_dim=8),
    "diffusion": dict(horizon=16, n_action_steps=10, n_obs_steps=2, down_dims=(16, 32), num_inference_steps=3,
                      crop_shape=None, diffusion_step_embed_dim=16, spatial_softmax_num_keypoints=8),
}


def save_tiny(kind: str, out, image_key: str = "observation.images.front"):
    inputs = {"observation.state": PolicyFeature(FeatureType.STATE, (6,)),
              image_key: PolicyFeature(FeatureType.VISUAL, (3, 64, 64))}
    cfg = make_policy_config(kind, input_features=inputs, output_features={"action": PolicyFeature(FeatureType.ACTION, (6,))},
                             pretrained_backbone_weights=None, device="cpu", **KW[kind])
    torch.manual_seed(0)
    policy = get_policy_class(kind)(cfg)
    vec = lambda v: torch.full((6,), v)  # noqa: E731
    stats = {"observation.state": {"mean": vec(0.0), "std": vec(1.0), "min": vec(-2.0), "max": vec(2.0)},
             "action": {"mean": vec(0.1), "std": vec(0.5), "min": vec(-2.0), "max": vec(2.0)},
             image_key: {"mean": torch.full((3, 1, 1), 0.5), "std": torch.full((3, 1, 1), 0.25),
                         "min": torch.zeros(3, 1, 1), "max": torch.ones(3, 1, 1)}}
    pre, post = make_pre_post_processors(cfg, dataset_stats=stats)
    policy.save_pretrained(out)
    pre.save_pretrained(out)
    post.save_pretrained(out)
    spec = tiny_spec(cameras=("front",), image_size=(64, 64), chunk_length=10)
    write_card(out, ModelCard(spec=spec, inputs=standard_inputs(spec)))
    return out


def inputs(n, seed=0):
    rng = np.random.default_rng(seed)
    return [PolicyInput(state=rng.uniform(-1, 1, 6).astype(np.float32), session_id=f"s{i}",
                        images={"front": rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)}) for i in range(n)]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("kind", ["act", "diffusion"])
def test_tiny_policy_loads_offline_and_predicts_chunks(tmp_path, kind):
    path = save_tiny(kind, tmp_path / kind)
    backend = create_backend(BackendConfig(name="lerobot", path=str(path)))
    backend.warmup()
    assert backend.spec.state_names == SPEC.state_names and backend.spec.chunk_length == 10
    assert [c.name for c in backend.spec.cameras] == ["front"]
    chunks = backend.infer(inputs(3))
    assert [c.shape for c in chunks] == [(10, 6)] * 3 and all(np.isfinite(c).all() for c in chunks)
    if kind == "act":  # deterministic: batched == single, and the state conditions the chunk
        single = backend.infer(inputs(3)[1:2])[0]
        np.testing.assert_allclose(single, chunks[1], atol=1e-4)
        assert not np.allclose(chunks[0], chunks[1])


@pytest.mark.timeout(120)
def test_camera_mismatch_and_missing_files_are_clear(tmp_path):
    path = save_tiny("act", tmp_path / "act", image_key="observation.images.top")
    with pytest.raises(BackendError, match="camera_map"):
        create_backend(BackendConfig(name="lerobot", path=str(path), options={"robot_cameras": ["front"]}))
    ok = create_backend(BackendConfig(name="lerobot", path=str(path), options={
        "robot_cameras": ["front"], "camera_map": {"observation.images.top": "front"}}))
    assert [c.name for c in ok.spec.cameras] == ["front"]
    (path / "policy_preprocessor.json").unlink()
    with pytest.raises(BackendError, match="policy_preprocessor.json"):
        create_backend(BackendConfig(name="lerobot", path=str(path)))


@pytest.mark.timeout(120)
def test_served_to_a_real_client(tmp_path):
    from policy_server.bench import RobotLoad
    from policy_server.server import PolicyServer
    from vla_async.config import NetworkConfig, ServerConfig
    from vla_async.messages import Observation
    from vla_async.transport import PolicyClient, ReceivedChunk

    path = save_tiny("act", tmp_path / "act")
    backend = create_backend(BackendConfig(name="lerobot", path=str(path)))
    with PolicyServer(ServerConfig(network=NetworkConfig(port=0)), backend, port=0) as server:
        load = RobotLoad.for_policy(backend.spec)
        client = PolicyClient(NetworkConfig(port=server.port, request_timeout_s=20.0), "r0", load.robot_spec)
        client.connect(timeout_s=20.0)
        try:
            rolled = load.state + 0.5
            client.submit(Observation(request_id=1, tick=3, exec_tick=7, state=load.state, images=load.images,
                                      rollforward_state=rolled))
            deadline, got = time.monotonic() + 60, []
            while not got and time.monotonic() < deadline:
                client.wait(0.5)
                got = client.poll()
            assert isinstance(got[0], ReceivedChunk) and got[0].chunk.start_tick == 7
            want = backend.infer([PolicyInput(state=rolled, images=load.images)])[0]
            np.testing.assert_allclose(got[0].chunk.actions, want, atol=1e-4)  # rollforward state was used
        finally:
            client.close()
