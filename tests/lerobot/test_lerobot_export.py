"""`vla-async export-onnx --backend lerobot`: a tiny ACT checkpoint exported with its saved normaliser
baked in, served by the ONNX backend through the real server to a real client, and compared with the
LeRobot backend's chunk; bad checkpoints and Diffusion give clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("lerobot")
pytest.importorskip("onnxruntime")

from policy_server.backend import create_backend  # noqa: E402
from tests.lerobot.tiny_lerobot import SPEC, inputs, save_tiny, serve_one  # noqa: E402
from vla_async.cli import main as cli_main  # noqa: E402
from vla_async.config import BackendConfig  # noqa: E402

pytestmark = [pytest.mark.lerobot]
ATOL = 1e-4


def export(path, out, *extra) -> int:
    return cli_main(["export-onnx", "--backend", "lerobot", "--path", str(path), "--out", str(out), *extra])


@pytest.mark.timeout(120)
def test_act_export_matches_the_lerobot_backend_when_served(tmp_path, capsys):
    path = save_tiny("act", tmp_path / "act")
    out = tmp_path / "onnx" / "act.onnx"
    assert export(path, out, "--json", "--atol", str(ATOL)) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["match"] and 0 <= result["max_abs_diff"] <= ATOL

    original = create_backend(BackendConfig(name="lerobot", path=str(path)))
    exported = create_backend(BackendConfig(name="onnx", path=str(out)))
    assert exported.spec.state_names == SPEC.state_names and exported.spec.action_names == SPEC.action_names
    assert exported.spec.chunk_length == 10 and [c.name for c in exported.spec.cameras] == ["front"]
    batch = inputs(3, seed=1)  # robot units: uint8 images, raw states
    want, got = original.infer(batch), exported.infer(batch)
    for w, g in zip(want, got, strict=True):
        np.testing.assert_allclose(g, w, atol=ATOL)
    assert not np.allclose(got[0], got[1])  # the inputs condition the chunk

    served, seen = serve_one(exported)
    np.testing.assert_allclose(served, original.infer([seen])[0], atol=ATOL)
    # output unnormalisation is in the graph: the saved action stats (mean 0.1, std 0.5) shift the chunk
    original.post = lambda action: action
    assert np.max(np.abs(original.infer([seen])[0] - served)) > 10 * ATOL


@pytest.mark.timeout(120)
def test_bad_checkpoints_and_diffusion_fail_clearly(tmp_path, capsys):
    out = tmp_path / "x.onnx"
    assert export(tmp_path / "nowhere", out) == 2
    assert "does not exist" in capsys.readouterr().err

    path = save_tiny("act", tmp_path / "act")
    (path / "model.safetensors").write_bytes(b"not a safetensors file")
    assert export(path, out) == 2
    err = capsys.readouterr().err
    assert "could not load LeRobot checkpoint" in err and str(path) in err

    (path / "config.json").unlink()
    assert export(path, out) == 2
    assert "lacks config.json" in capsys.readouterr().err

    diffusion = save_tiny("diffusion", tmp_path / "diffusion")
    assert export(diffusion, out) == 2
    err = capsys.readouterr().err
    assert "diffusion" in err and "random noise" in err and "backend.name: lerobot" in err
    assert not out.exists()
