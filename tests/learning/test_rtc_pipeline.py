"""CI-sized: `vla-async train --prefix-ticks` → `export-onnx` → the real server (onnx backend) → a chunk that keeps
the committed prefix it was sent, equal to the torch policy's; the spec declares `action_prefix: trained`."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("mujoco")
pytest.importorskip("pyarrow")

from policy_server.backend import PolicyInput, create_backend  # noqa: E402
from policy_server.model_io import ModelCard  # noqa: E402
from vla_async.config import BackendConfig  # noqa: E402
from vla_async.messages import Observation  # noqa: E402
from vla_async.specs import action_prefix_mode  # noqa: E402
from vla_async.transport import ReceivedChunk  # noqa: E402

from .test_learned_pipeline import H, dataset, served, sim_observation, train_and_export  # noqa: E402, F401

pytestmark = [pytest.mark.integration]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("source", ["plan", "recorded"])
def test_prefix_conditioned_policy_trains_exports_and_keeps_the_prefix_through_the_server(dataset, tmp_path, source):  # noqa: F811
    torch_path, onnx_path = train_and_export(dataset, tmp_path / "run", "--head", "flow", "--prefix-ticks", "1,4",
                                             "--prefix-source", source)
    card = ModelCard.from_json((onnx_path.parent / "policy.spec.json").read_text())
    assert card.model["training"]["prefix_source"] == source
    assert [t.source for t in card.inputs][-2:] == ["action_prefix", "prefix_mask"]
    assert action_prefix_mode(card.spec) == "trained"
    robot_spec, obs, instruction = sim_observation()
    prefix = np.tile(obs.state, (5, 1)).astype(np.float32) + np.linspace(0, 0.05, 5, dtype=np.float32)[:, None]
    observation = Observation(request_id=1, tick=3, exec_tick=3, state=obs.state, images=obs.images, task=instruction,
                              deadline_ms=10_000, action_prefix=prefix, prefix_tick=3, prefix_frozen=3)
    (got,) = served(onnx_path, [observation], robot_spec)
    assert isinstance(got, ReceivedChunk), got
    np.testing.assert_allclose(got.chunk.actions[:3], prefix[:3], atol=1e-5)  # committed rows kept, in ONNX too
    assert got.chunk.actions.shape == (H, 6)
    reference = create_backend(BackendConfig(name="torch", path=str(torch_path)))
    want = reference.infer([PolicyInput(state=obs.state, images=obs.images, task=instruction, action_prefix=prefix,
                                        prefix_frozen=3)])[0]
    np.testing.assert_allclose(got.chunk.actions, want, atol=1e-4)
