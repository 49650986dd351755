"""The shipped learned reach_jump policy (models/reach_jump): its card, served inputs, and a short
virtual-time evaluation on two held-out seeds (the README has the 30-seed numbers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("mujoco")

from policy_server.backend import create_backend  # noqa: E402
from sim.eval.grid import load_eval_config, resolve_strategy  # noqa: E402
from sim.eval.virtual_engine import run_virtual_episode  # noqa: E402
from vla_async.config import BackendConfig, InjectedLatencyConfig  # noqa: E402

MODEL = Path(__file__).resolve().parents[2] / "models" / "reach_jump" / "policy.onnx"
BACKEND = BackendConfig(name="onnx", path=str(MODEL), options={"threads": 1})


def test_card_describes_what_the_model_takes():
    spec = create_backend(BACKEND).spec
    assert spec.chunk_length == 50 and spec.fps == 30.0 and spec.action_dim == 6
    assert [(c.name, c.height) for c in spec.cameras] == [("front", 64), ("wrist", 64)]
    assert spec.extra["tasks"] == ["touch the magenta ball with the gripper every time it moves"]
    assert MODEL.stat().st_size < 4_000_000 and MODEL.with_name("policy.card.md").is_file()


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize(("strategy", "latency_ms", "seed"), [("sync", 0.0, 1000), ("vlash_rail", 200.0, 1001)])
def test_shipped_policy_hits_the_targets_on_held_out_seeds(strategy, latency_ms, seed):
    latency = InjectedLatencyConfig(distribution="constant", mean_ms=latency_ms, jitter_ms=0.0)
    log = run_virtual_episode("reach_jump", resolve_strategy(load_eval_config(None), strategy), latency, seed,
                              max_duration_s=8.0, policy=BACKEND)
    assert log.success
    assert np.all(np.isfinite(log.command))
