"""TorchBackend on tiny real policies saved to disk (state dict + factory, and torch.export)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from policy_server.backend import BackendError, PolicyInput, create_backend  # noqa: E402
from policy_server.model_io import ModelCard, read_card, sidecar_path, write_card  # noqa: E402
from policy_server.tiny_models import save_tiny_policy, tiny_spec  # noqa: E402
from vla_async.config import BackendConfig  # noqa: E402

SPEC = tiny_spec(cameras=("front", "wrist"), image_size=(32, 32), env_dim=3, chunk_length=20)


def make_inputs(n: int, seed: int = 0) -> list[PolicyInput]:
    rng = np.random.default_rng(seed)
    return [
        PolicyInput(
            state=rng.uniform(-1, 1, 6).astype(np.float32),
            images={c: rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for c in ("front", "wrist")},
            environment_state=rng.uniform(-1, 1, 3).astype(np.float32),
            task="pick the red cube",
        )
        for _ in range(n)
    ]


@pytest.fixture(scope="module")
def state_dict_path(tmp_path_factory):
    return save_tiny_policy(tmp_path_factory.mktemp("sd"), SPEC, fmt="state_dict", seed=3)


def test_chunks_have_spec_shape_and_batch_equals_singles(state_dict_path):
    backend = create_backend(BackendConfig(name="torch", path=str(state_dict_path)))
    backend.warmup()
    assert backend.spec == SPEC and backend.supports_batching
    inputs = make_inputs(4)
    batched = backend.infer(inputs)
    singles = [backend.infer([one])[0] for one in inputs]
    assert [c.shape for c in batched] == [(20, 6)] * 4
    assert all(c.dtype == np.float32 for c in batched)
    for b, s in zip(batched, singles, strict=True):
        np.testing.assert_allclose(b, s, atol=1e-5)
    # different robots get different chunks (the state conditions the output)
    assert not np.allclose(batched[0], batched[1])


def test_conditioning_state_drives_the_output(state_dict_path):
    backend = create_backend(BackendConfig(name="torch", path=str(state_dict_path)))
    base = make_inputs(1)[0]
    moved = PolicyInput(state=base.state + 0.5, images=base.images, environment_state=base.environment_state)
    a, b = backend.infer([base, moved])
    # TinyPolicy is residual on the state: chunks start near the state they were conditioned on
    assert np.abs(a[0] - base.state).max() < 0.11 and np.abs(b[0] - moved.state).max() < 0.11


def test_exported_program_matches_the_module(tmp_path, state_dict_path):
    exported = save_tiny_policy(tmp_path, SPEC, fmt="exported", seed=3)
    inputs = make_inputs(3, seed=1)
    want = create_backend(BackendConfig(name="torch", path=str(state_dict_path))).infer(inputs)
    got = create_backend(BackendConfig(name="torch", path=str(exported))).infer(inputs)
    for w, g in zip(want, got, strict=True):
        np.testing.assert_allclose(w, g, atol=1e-5)


def test_missing_files_give_clear_errors(tmp_path, state_dict_path):
    with pytest.raises(BackendError, match="does not exist"):
        create_backend(BackendConfig(name="torch", path=str(tmp_path / "nope.pt")))
    with pytest.raises(BackendError, match="needs backend.path"):
        create_backend(BackendConfig(name="torch"))
    lonely = tmp_path / "lonely.pt"
    lonely.write_bytes(state_dict_path.read_bytes())
    with pytest.raises(BackendError, match=r"lonely\.spec\.json"):
        create_backend(BackendConfig(name="torch", path=str(lonely)))


def test_corrupt_weights_and_wrong_spec_fail_at_load(tmp_path, state_dict_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    write_card(bad, read_card(state_dict_path))
    with pytest.raises(BackendError, match="could not load torch policy"):
        create_backend(BackendConfig(name="torch", path=str(bad)))
    # the card claims bigger images than the weights were built for: the module builds, but the
    # wrong spec is caught by the load-time forward pass, naming the inputs
    other = save_tiny_policy(tmp_path / "other", SPEC, fmt="state_dict")
    card = read_card(other)
    wrong = tiny_spec(cameras=("front",), image_size=(32, 32), env_dim=3, chunk_length=20)
    from policy_server.model_io import standard_inputs

    write_card(other, ModelCard(spec=wrong, inputs=standard_inputs(wrong), model=card.model))
    with pytest.raises(BackendError, match="rejects the inputs"):
        create_backend(BackendConfig(name="torch", path=str(other)))
    assert sidecar_path(other).name == "policy.spec.json"


def test_cuda_without_gpu_and_bad_inputs(state_dict_path):
    if not torch.cuda.is_available():
        with pytest.raises(BackendError, match="no CUDA device"):
            create_backend(BackendConfig(name="torch", path=str(state_dict_path), device="cuda"))
    backend = create_backend(BackendConfig(name="torch", path=str(state_dict_path)))
    good = make_inputs(1)[0]
    small = PolicyInput(state=good.state, images={"front": good.images["front"][:16], "wrist": good.images["wrist"]},
                        environment_state=good.environment_state)
    with pytest.raises(BackendError, match="observation.images.front"):
        backend.infer([small])
    no_env = PolicyInput(state=good.state, images=good.images)
    with pytest.raises(BackendError, match="environment_state"):
        backend.infer([no_env])


def test_crash_inside_model_is_a_backend_error_and_backend_survives(tmp_path):
    path = save_tiny_policy(tmp_path, SPEC, fmt="state_dict", fault="raise_on_large_state")
    backend = create_backend(BackendConfig(name="torch", path=str(path)))
    good = make_inputs(1)[0]
    poison = PolicyInput(state=np.full(6, 1e4, np.float32), images=good.images, environment_state=good.environment_state)
    with pytest.raises(BackendError, match="simulated crash"):
        backend.infer([poison])
    assert backend.infer([good])[0].shape == (20, 6)


def test_float16_and_compile_options(state_dict_path):
    inputs = make_inputs(2)
    ref = create_backend(BackendConfig(name="torch", path=str(state_dict_path))).infer(inputs)
    compiled = create_backend(BackendConfig(name="torch", path=str(state_dict_path),
                                            options={"compile": True, "compile_backend": "eager"}))
    for r, c in zip(ref, compiled.infer(inputs), strict=True):
        np.testing.assert_allclose(r, c, atol=1e-5)
    bf16 = create_backend(BackendConfig(name="torch", path=str(state_dict_path), dtype="bfloat16"))
    out = bf16.infer(inputs)
    assert out[0].dtype == np.float32
    assert np.abs(out[0] - ref[0]).max() < 0.1  # bfloat16 has ~3 significant digits
