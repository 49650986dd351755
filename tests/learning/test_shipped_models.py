"""The shipped learned policies (models/reach_jump, models/pick_place, models/track_sweep): their cards, served
inputs, and a short virtual-time evaluation on one or two held-out seeds each (the README has the 30- and 100-seed
numbers)."""

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

MODELS = Path(__file__).resolve().parents[2] / "models"
PICK_PLACE_TASKS = [f"pick up the {cube} cube and put it in the {zone} zone"
                    for cube in ("blue", "red") for zone in ("green", "yellow")]
CARDS = {  # task -> (the instructions the card lists, its head)
    "reach_jump": (["touch the magenta ball with the gripper every time it moves"], "regression"),
    "pick_place": (PICK_PLACE_TASKS, "flow"),
    "track_sweep": (["follow the moving magenta ball with the gripper"], "regression"),
}


def backend(task: str) -> BackendConfig:
    return BackendConfig(name="onnx", path=str(MODELS / task / "policy.onnx"), options={"threads": 1})


@pytest.mark.parametrize("task", sorted(CARDS))
def test_card_describes_what_the_model_takes(task):
    spec = create_backend(backend(task)).spec
    tasks, head = CARDS[task]
    assert spec.chunk_length == 50 and spec.fps == 30.0 and spec.action_dim == 6
    assert [(c.name, c.height) for c in spec.cameras] == [("front", 64), ("wrist", 64)]
    assert spec.extra["tasks"] == tasks
    model = MODELS / task / "policy.onnx"
    assert model.stat().st_size < 4_000_000 and model.with_name("policy.card.md").is_file()
    assert f"- head: {head}" in model.with_name("policy.card.md").read_text()


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize(("task", "strategy", "latency_ms", "seed", "duration_s"), [
    ("reach_jump", "sync", 0.0, 1000, 8.0), ("reach_jump", "vlash_rail", 200.0, 1001, 8.0),
    ("pick_place", "sync", 0.0, 1000, 10.0), ("pick_place", "vlash_rail", 200.0, 1001, 10.0),
    ("track_sweep", "vlash_rail", 300.0, 1000, 3.5), ("pick_place", "lag_rail", 200.0, 1002, 10.0),
])
def test_shipped_policy_succeeds_on_held_out_seeds(task, strategy, latency_ms, seed, duration_s):
    latency = InjectedLatencyConfig(distribution="constant", mean_ms=latency_ms, jitter_ms=0.0)
    log = run_virtual_episode(task, resolve_strategy(load_eval_config(None), strategy), latency, seed,
                              max_duration_s=duration_s, policy=backend(task))
    assert log.success
    assert np.all(np.isfinite(log.command))
