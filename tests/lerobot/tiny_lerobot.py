"""Tiny LeRobot ACT/Diffusion checkpoints with random weights (built from config, no download), and a
one-request round trip through a real PolicyServer to a real PolicyClient. Import only after
`pytest.importorskip("lerobot")`."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from lerobot.configs.types import FeatureType, PolicyFeature
from lerobot.policies.factory import get_policy_class, make_policy_config, make_pre_post_processors

from policy_server.backend import PolicyBackend, PolicyInput
from policy_server.model_io import ModelCard, standard_inputs, write_card
from policy_server.tiny_models import tiny_spec

SPEC = tiny_spec(cameras=("front",), image_size=(64, 64), chunk_length=10)
KW = {
    "act": dict(chunk_size=10, n_action_steps=10, dim_model=32, n_heads=2, dim_feedforward=64,
                n_encoder_layers=1, n_decoder_layers=1, n_vae_encoder_layers=1, latent_dim=8),
    "diffusion": dict(horizon=16, n_action_steps=10, n_obs_steps=2, down_dims=(16, 32), num_inference_steps=3,
                      crop_shape=None, diffusion_step_embed_dim=16, spatial_softmax_num_keypoints=8),
}


def save_tiny(kind: str, out: Path, image_key: str = "observation.images.front") -> Path:
    """Policy + processors (non-identity stats, so normalisation matters) + the names sidecar."""
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
    write_card(out, ModelCard(spec=SPEC, inputs=standard_inputs(SPEC)))
    return out


def inputs(n: int, seed: int = 0) -> list[PolicyInput]:
    rng = np.random.default_rng(seed)
    return [PolicyInput(state=rng.uniform(-1, 1, 6).astype(np.float32), session_id=f"s{i}",
                        images={"front": rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)}) for i in range(n)]


def serve_one(backend: PolicyBackend, rollforward: float = 0.5, timeout_s: float = 60.0) -> tuple[np.ndarray, PolicyInput]:
    """Serve `backend`, send one observation with a rollforward state; the chunk received and the
    input the policy should have seen (the rolled-forward state)."""
    from policy_server.bench import RobotLoad
    from policy_server.server import PolicyServer
    from vla_async.config import NetworkConfig, ServerConfig
    from vla_async.messages import Observation
    from vla_async.transport import PolicyClient, ReceivedChunk

    with PolicyServer(ServerConfig(network=NetworkConfig(port=0)), backend, port=0) as server:
        load = RobotLoad.for_policy(backend.spec)
        client = PolicyClient(NetworkConfig(port=server.port, request_timeout_s=20.0), "r0", load.robot_spec)
        client.connect(timeout_s=20.0)
        try:
            rolled = load.state + rollforward
            client.submit(Observation(request_id=1, tick=3, exec_tick=7, state=load.state, images=load.images,
                                      rollforward_state=rolled))
            deadline, got = time.monotonic() + timeout_s, []
            while not got and time.monotonic() < deadline:
                client.wait(0.5)
                got = client.poll()
        finally:
            client.close()
    assert got and isinstance(got[0], ReceivedChunk), f"no chunk within {timeout_s} s: {got}"
    assert got[0].chunk.start_tick == 7
    return np.asarray(got[0].chunk.actions), PolicyInput(state=rolled, images=load.images)
