"""The virtual engine with a policy backend (EvalConfig.backend): the expert served as a backend gives
the same episode as the in-process expert, cameras are rendered only at request ticks, and a learned
ONNX policy runs through `vla-async eval`."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mujoco")

from sim.eval.grid import load_eval_config, resolve_strategy  # noqa: E402
from sim.eval.virtual_engine import run_virtual_episode  # noqa: E402
from vla_async.config import BackendConfig, ConfigError, InjectedLatencyConfig  # noqa: E402

LATENCY = InjectedLatencyConfig(distribution="constant", mean_ms=200.0, jitter_ms=0.0)
EXPERT_WITH_CAMERA = BackendConfig(name="expert", options={"cameras": ["front"], "image_size": [32, 32]})


def episode(policy=None, **kwargs):
    # the default's conditioning pinned: `auto` gives a policy that declares cameras the measured state, and the
    # expert served with a camera must see what the in-process one (no cameras) sees
    strategy = resolve_strategy(load_eval_config(None), "vlash_rail").model_copy(update={"rollforward": "last_command"})
    return run_virtual_episode("reach_jump", strategy, LATENCY, seed=3, max_duration_s=2.0, policy=policy, **kwargs)


@pytest.mark.timeout(120)
def test_expert_backend_matches_the_in_process_expert_and_renders_only_for_requests(monkeypatch):
    from sim import rendering

    calls = []
    original = rendering.CameraRenderer.render

    def counting(self, qpos, mocap):
        images = original(self, qpos, mocap)
        calls.append({k: v.shape for k, v in images.items()})
        return images

    monkeypatch.setattr(rendering.CameraRenderer, "render", counting)
    reference = episode()
    assert calls == []  # the in-process expert needs no images
    served = episode(EXPERT_WITH_CAMERA)
    np.testing.assert_array_equal(served.command, reference.command)
    assert len(served.requests) >= 3 and len(calls) == len(served.requests)
    assert calls[0] == {"front": (32, 32, 3)}
    calls.clear()
    episode(EXPERT_WITH_CAMERA, cameras=["front", "wrist"], image_size=16)
    assert calls and calls[0] == {"front": (16, 16, 3), "wrist": (16, 16, 3)}


def test_bad_backend_and_engine_combinations_fail_clearly():
    with pytest.raises(ConfigError, match="does not exist"):
        episode(BackendConfig(name="onnx", path="/nowhere/policy.onnx"))
    with pytest.raises(ConfigError, match="needs camera"):
        episode(EXPERT_WITH_CAMERA, cameras=["wrist"])
    # the real-time engine serves a backend too (its server runs it); a bad one fails before any process starts
    config = load_eval_config(None, ["--engine=realtime", "--backend.name=onnx", "--backend.path=x.onnx"])
    assert config.backend is not None and config.backend.path == "x.onnx"
    from sim.eval.realtime_engine import policy_cameras

    with pytest.raises(ConfigError, match="does not exist"):
        policy_cameras(BackendConfig(name="onnx", path="/nowhere/policy.onnx"), None, None, 30.0)
    assert policy_cameras(EXPERT_WITH_CAMERA, None, None, 30.0) == (("front",), (32, 32))
    assert policy_cameras(None, None, None, 30.0) == ((), (224, 224))  # the scripted expert: no cameras
