"""OnnxBackend and `vla-async export-onnx` on a tiny real torch policy exported to ONNX."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from policy_server.backend import BackendError, PolicyInput, create_backend  # noqa: E402
from policy_server.export_onnx import main as export_main  # noqa: E402
from policy_server.model_io import METADATA_KEY, ModelCard, sidecar_path, standard_inputs  # noqa: E402
from policy_server.tiny_models import save_tiny_policy, tiny_spec  # noqa: E402
from vla_async.config import BackendConfig  # noqa: E402

SPEC = tiny_spec(cameras=("front",), image_size=(32, 32), chunk_length=16)


def make_inputs(n: int, seed: int = 0) -> list[PolicyInput]:
    rng = np.random.default_rng(seed)
    return [PolicyInput(state=rng.uniform(-1, 1, 6).astype(np.float32),
                        images={"front": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)}) for _ in range(n)]


@pytest.fixture(scope="module")
def torch_path(tmp_path_factory):
    return save_tiny_policy(tmp_path_factory.mktemp("torch"), SPEC, fmt="state_dict", seed=7)


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory, torch_path):
    out = tmp_path_factory.mktemp("onnx") / "policy.onnx"
    assert export_main(["--backend", "torch", "--path", str(torch_path), "--out", str(out), "--json"]) == 0
    return out


def test_export_cli_reports_a_match_within_tolerance(tmp_path, torch_path, capsys):
    out = tmp_path / "m.onnx"
    assert export_main(["--path", str(torch_path), "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["match"] and result["max_abs_diff"] <= 1e-4
    # an impossible tolerance makes the same export fail: the check is real
    rc = export_main(["--path", str(torch_path), "--out", str(out), "--atol", "0", "--json"])
    strict = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == (0 if strict["max_abs_diff"] == 0 else 1) and strict["match"] == (rc == 0)
    assert export_main(["--path", str(tmp_path / "missing.pt"), "--out", str(out)]) == 2


def test_onnx_matches_torch_batched_and_single(torch_path, onnx_path):
    inputs = make_inputs(3)
    want = create_backend(BackendConfig(name="torch", path=str(torch_path))).infer(inputs)
    backend = create_backend(BackendConfig(name="onnx", path=str(onnx_path)))
    backend.warmup()
    assert backend.supports_batching and backend.spec == SPEC
    got = backend.infer(inputs)
    single = backend.infer(inputs[1:2])[0]
    for w, g in zip(want, got, strict=True):
        np.testing.assert_allclose(w, g, atol=1e-4)
    np.testing.assert_allclose(single, got[1], atol=1e-5)


def test_card_from_metadata_without_sidecar(tmp_path, onnx_path):
    copy = tmp_path / "bare.onnx"
    copy.write_bytes(onnx_path.read_bytes())
    assert not sidecar_path(copy).exists()
    assert create_backend(BackendConfig(name="onnx", path=str(copy))).spec == SPEC


def test_no_card_anywhere_and_garbage_file(tmp_path, onnx_path):
    model = onnx.load(str(onnx_path))
    del model.metadata_props[:]
    bare = tmp_path / "nocard.onnx"
    onnx.save(model, str(bare))
    with pytest.raises(BackendError, match=r"nocard\.spec\.json"):
        create_backend(BackendConfig(name="onnx", path=str(bare)))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00garbage")
    with pytest.raises(BackendError, match="could not load ONNX model"):
        create_backend(BackendConfig(name="onnx", path=str(junk)))


def test_inputs_checked_against_spec_at_load(tmp_path, onnx_path):
    wrong = tiny_spec(cameras=("front", "wrist"), image_size=(48, 48), chunk_length=16)
    model = onnx.load(str(onnx_path))
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            prop.value = ModelCard(spec=wrong, inputs=standard_inputs(wrong)).to_json()
    path = tmp_path / "wrong.onnx"
    onnx.save(model, str(path))
    with pytest.raises(BackendError) as info:
        create_backend(BackendConfig(name="onnx", path=str(path)))
    text = str(info.value)
    assert "observation.images.wrist" in text and "missing" in text  # every problem listed
    assert "observation.images.front" in text and "48" in text


def test_cuda_request_falls_back_to_cpu_with_a_log_line(onnx_path, caplog):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA for onnxruntime")
    with caplog.at_level(logging.WARNING):
        backend = create_backend(BackendConfig(name="onnx", path=str(onnx_path), device="cuda"))
    assert not backend.on_cuda
    assert any("falling back to CPU" in r.getMessage() for r in caplog.records)
    assert backend.infer(make_inputs(1))[0].shape == (16, 6)


def test_nan_model_output_passes_through_for_the_server_to_reject(tmp_path):
    path = save_tiny_policy(tmp_path, SPEC, fmt="onnx", fault="nan")
    out = create_backend(BackendConfig(name="onnx", path=str(path))).infer(make_inputs(1))
    assert np.isnan(out[0]).all()
