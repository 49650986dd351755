"""LeRobotBackend on tiny ACT and Diffusion policies built from config with random weights (no download),
saved with their processors, loaded offline and served through the real server to a real client."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("lerobot")
pytest.importorskip("torch")

from policy_server.backend import BackendError, create_backend  # noqa: E402
from tests.lerobot.tiny_lerobot import SPEC, inputs, save_tiny, serve_one  # noqa: E402
from vla_async.config import BackendConfig  # noqa: E402

pytestmark = [pytest.mark.lerobot]


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
    backend = create_backend(BackendConfig(name="lerobot", path=str(save_tiny("act", tmp_path / "act"))))
    got, seen = serve_one(backend)
    np.testing.assert_allclose(got, backend.infer([seen])[0], atol=1e-4)  # rollforward state was used
