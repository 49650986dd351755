"""Real-time chunking in the flow policy: the soft mask, guided denoising (inference-time RTC) through the torch
backend, and training-time prefix conditioning on a task only the prefix reveals."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from policy_server.backend import BackendError, PolicyInput  # noqa: E402
from policy_server.backends.torch_backend import TorchBackend  # noqa: E402
from policy_server.learning.model import VisuomotorPolicy  # noqa: E402
from policy_server.learning.train import FACTORY  # noqa: E402
from policy_server.model_io import (  # noqa: E402
    PREFIX_KEY,
    PREFIX_MASK_KEY,
    STATE_KEY,
    ModelCard,
    TensorSpec,
    read_card,
    write_card,
)
from policy_server.rtc import rtc_row_weights  # noqa: E402
from vla_async.config import BackendConfig  # noqa: E402
from vla_async.specs import PolicySpec, accepts_action_prefix, action_prefix_mode  # noqa: E402

H, A = 12, 3


def test_soft_mask_is_one_on_committed_rows_then_the_papers_exponential_decay_then_zero():
    w = rtc_row_weights(H, frozen=3, rows=9, schedule="exp")
    np.testing.assert_array_equal(w[:3], 1.0)
    np.testing.assert_array_equal(w[9:], 0.0)
    c = (9 - 5) / (9 - 3 + 1)
    assert w[5] == pytest.approx(c * (math.e ** c - 1) / (math.e - 1), rel=1e-6)
    assert np.all(np.diff(w[3:9]) < 0) and 0 < w[8] < w[3] < 1
    np.testing.assert_array_equal(rtc_row_weights(H, 3, 9, "frozen"), [1, 1, 1] + [0] * 9)
    np.testing.assert_array_equal(rtc_row_weights(H, 0, 0), 0.0)
    with pytest.raises(ValueError, match="schedule"):
        rtc_row_weights(H, 1, 4, "cosine")


def _save(tmp_path, model: VisuomotorPolicy, kwargs: dict, prefix_inputs: bool = False):
    names = tuple(f"j{i}" for i in range(A))
    spec = PolicySpec(name="tiny-flow", state_names=names, action_names=names, chunk_length=H, fps=30.0)
    inputs = [TensorSpec(STATE_KEY, "state", (A,))]
    if prefix_inputs:
        inputs += [TensorSpec(PREFIX_KEY, PREFIX_KEY, (H, A)), TensorSpec(PREFIX_MASK_KEY, PREFIX_MASK_KEY, (H,))]
    path = tmp_path / "policy.pt"
    torch.save(model.state_dict(), path)
    write_card(path, ModelCard(spec=spec, inputs=tuple(inputs), model={"factory": FACTORY, "kwargs": kwargs}))
    return path


def _tiny(tmp_path, **extra):
    kwargs = dict(state_dim=A, chunk_length=H, cameras=[], vocab_size=0, head="flow", flow_steps=6, width=48, seed=3,
                  **extra)
    model = VisuomotorPolicy(**kwargs)
    model.set_normalisation(torch.zeros(A), torch.ones(A), torch.zeros(H, A), torch.full((H, A), 0.3))
    return _save(tmp_path, model, kwargs, prefix_inputs=extra.get("prefix_conditioning", False))


def _backend(path, **options) -> TorchBackend:
    return TorchBackend(BackendConfig(name="torch", path=str(path), options={"threads": 1, **options}))


PREFIX = np.linspace(-0.4, 0.6, 7 * A, dtype=np.float32).reshape(7, A)  # 7 rows of the client's plan
STATE = np.array([0.1, -0.2, 0.05], np.float32)


def _frozen_error(backend: TorchBackend, frozen: int = 4) -> float:
    out = backend.infer([PolicyInput(state=STATE, action_prefix=PREFIX, prefix_frozen=frozen)])[0]
    return float(np.abs(out[:frozen] - PREFIX[:frozen]).max())


def test_inpaint_with_infinite_guidance_weight_reproduces_the_committed_rows(tmp_path):
    path = _tiny(tmp_path)
    plain = _backend(path)
    assert not accepts_action_prefix(plain.spec)  # a plain flow model takes no prefix unless told to inpaint
    backend = _backend(path, action_prefix="inpaint", rtc_guidance_weight=float("inf"))
    assert action_prefix_mode(backend.spec) == "inpaint"
    out = backend.infer([PolicyInput(state=STATE, action_prefix=PREFIX, prefix_frozen=4)])[0]
    np.testing.assert_allclose(out[:4], PREFIX[:4], atol=1e-5)
    free = plain.infer([PolicyInput(state=STATE)])[0]
    assert np.abs(free[:4] - PREFIX[:4]).max() > 0.05  # the policy on its own does not do that
    # no prefix in the request: exactly the plain policy
    np.testing.assert_allclose(backend.infer([PolicyInput(state=STATE)])[0], free, atol=1e-6)


def test_inpaint_options_are_checked_at_load(tmp_path):
    path = _tiny(tmp_path)
    for options, message in [({"action_prefix": "trained"}, "needs a model trained with prefix conditioning"),
                             ({"action_prefix": "psychic"}, "must be one of"),
                             ({"action_prefix": "inpaint", "rtc_schedule": "cosine"}, "rtc_schedule"),
                             ({"action_prefix": "inpaint", "rtc_guidance_weight": -1}, "rtc_guidance_weight"),
                             ({"action_prefix": "inpaint", "rtc_guidance_from": 1.0}, "rtc_guidance_from")]:
        with pytest.raises(BackendError, match=message):
            _backend(path, **options)


def _slopes_batch(gen: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunks that are straight lines from the state with a random slope: only the prefix shows the slope."""
    state = torch.rand(n, A, generator=gen) - 0.5
    slope = (torch.rand(n, A, generator=gen) - 0.5) * 0.2
    return state, state[:, None, :] + slope[:, None, :] * torch.arange(1, H + 1)[None, :, None]


@pytest.fixture(scope="module")
def slopes_policy(tmp_path_factory):
    """A prefix-conditioned flow policy trained (600 steps, seconds) on chunks whose slope only the prefix shows."""
    from policy_server.learning.train import TrainConfig, prefix_rows

    torch.manual_seed(0)
    kwargs = dict(state_dim=A, chunk_length=H, cameras=[], vocab_size=0, head="flow", flow_steps=6, width=96,
                  seed=0, prefix_conditioning=True)
    model = VisuomotorPolicy(**kwargs)
    row_std = (0.06 * torch.arange(1, H + 1))[:, None].expand(H, A).clone()  # the slopes' offset std per row
    model.set_normalisation(torch.zeros(A), torch.ones(A), torch.zeros(H, A), row_std)
    cfg = TrainConfig(dataset="-", out="-", prefix_ticks=(1, 6), prefix_free_fraction=0.2)
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(600):
        state, target = _slopes_batch(gen, 64)
        loss = model.loss(state, [], None, None, target, generator=gen, prefix_rows=prefix_rows(cfg, 64, gen))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return _save(tmp_path_factory.mktemp("slopes"), model, kwargs, prefix_inputs=True)


def _slopes_inputs(d: int, prefix: bool = True) -> tuple[list[PolicyInput], np.ndarray]:
    state, target = _slopes_batch(torch.Generator().manual_seed(99), 16)
    batch = [PolicyInput(state=s.numpy(), action_prefix=t[:d].numpy() if prefix else None, prefix_frozen=d)
             for s, t in zip(state, target, strict=True)]
    return batch, target.numpy()


def test_a_prefix_conditioned_policy_continues_the_prefix_it_is_given(slopes_policy):
    backend = _backend(slopes_policy)
    assert action_prefix_mode(backend.spec) == "trained"
    d = 4
    batch, truth = _slopes_inputs(d)
    with_prefix = np.stack(backend.infer(batch))
    without = np.stack(backend.infer(_slopes_inputs(d, prefix=False)[0]))
    np.testing.assert_allclose(with_prefix[:, :d], truth[:, :d], atol=1e-5)  # the committed rows, as given
    err_with = np.abs(with_prefix[:, d:] - truth[:, d:]).mean()
    err_without = np.abs(without[:, d:] - truth[:, d:]).mean()
    junction = np.abs(with_prefix[:, d] - with_prefix[:, d - 1]).mean()
    true_step = np.abs(truth[:, d] - truth[:, d - 1]).mean()  # ~0.05: slopes are at most 0.1 per row
    assert err_with < 0.15 * err_without, (err_with, err_without)  # it continues the prefix, within tolerance:
    assert err_with < 0.08 and junction < 1.5 * true_step + 0.02, (err_with, junction, true_step)


def test_guided_denoising_of_a_trained_flow_pulls_toward_the_prefix_more_as_the_weight_grows(slopes_policy):
    """Inference-time RTC on the same network with no prefix input (its plain mode): ΠGDM guidance."""
    d = 4
    batch, truth = _slopes_inputs(d)
    errors = []
    for weight in (0.0, 1.0, 5.0, float("inf")):
        out = np.stack(_backend(slopes_policy, action_prefix="inpaint", rtc_guidance_weight=weight).infer(batch))
        errors.append(float(np.abs(out[:, :d] - truth[:, :d]).mean()))
    assert errors[0] > 0.02
    assert errors[0] > errors[1] > errors[2] > errors[3], errors
    assert errors[2] < 0.5 * errors[0] and errors[3] < 1e-5, errors


def test_a_guidance_interval_leaves_the_early_flow_steps_to_the_observation(slopes_policy):
    """rtc_guidance_from τ0: the Euler steps before τ0 are the plain policy's, the later ones inpainted. Past the last
    step (6 steps: τ = 5/6 is the last) nothing but the committed rows changes; a mid interval joins the prefix less
    than guiding every step does."""
    d = 4
    batch, truth = _slopes_inputs(d)
    plain = np.stack(_backend(slopes_policy, action_prefix="inpaint").infer(_slopes_inputs(d, prefix=False)[0]))
    outs = {g: np.stack(_backend(slopes_policy, action_prefix="inpaint", rtc_guidance_from=g).infer(batch))
            for g in (0.0, 0.5, 0.9)}
    for out in outs.values():
        np.testing.assert_allclose(out[:, :d], truth[:, :d], atol=1e-5)  # committed rows exact whatever the interval
    np.testing.assert_allclose(outs[0.9][:, d:], plain[:, d:], atol=1e-6)  # no guided step: the plain continuation
    gap = {g: float(np.abs(out[:, d] - out[:, d - 1]).mean()) for g, out in outs.items()}  # the junction's jump
    assert gap[0.0] < gap[0.5] < gap[0.9], gap


def test_warm_start_adds_prefix_inputs_without_changing_what_the_policy_computes():
    from policy_server.learning.train import warm_start

    kwargs = dict(state_dim=A, chunk_length=H, cameras=[], vocab_size=0, head="flow", flow_steps=4, width=32, seed=5)
    plain = VisuomotorPolicy(**kwargs).eval()
    conditioned = VisuomotorPolicy(**kwargs | {"seed": 6, "prefix_conditioning": True}).eval()
    warm_start(conditioned, plain.state_dict())
    state = torch.rand(3, A)
    with torch.no_grad():
        want = plain(state)
        got = conditioned(state, torch.zeros(3, H, A), torch.zeros(3, H))
    torch.testing.assert_close(got, want)
    with pytest.raises(ValueError, match="keys differ"):
        warm_start(VisuomotorPolicy(**kwargs | {"head": "regression"}), plain.state_dict())


@pytest.mark.parametrize(("args", "message"), [
    (["--head", "regression", "--prefix-ticks", "0,4"], "prefix conditioning needs the flow head"),
    (["--prefix-ticks", "0,50"], "lo <= hi < chunk_length"),
])
def test_train_rejects_bad_prefix_settings_in_one_line(tmp_path, capsys, args, message):
    from policy_server.learning.cli import main

    assert main(["--dataset", str(tmp_path), "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_train_rejects_a_malformed_tick_range(capsys):
    from policy_server.learning.cli import main

    with pytest.raises(SystemExit):
        main(["--dataset", "x", "--out", "y", "--prefix-ticks", "4,1"])
    assert "0 <= lo <= hi" in capsys.readouterr().err


def test_inpainting_exports_to_onnx_and_matches_the_torch_backend(tmp_path):
    pytest.importorskip("onnxruntime")
    from policy_server.backend import create_backend
    from policy_server.export_onnx import main as export_main

    path = _tiny(tmp_path)
    onnx = tmp_path / "onnx" / "policy.onnx"
    assert export_main(["--path", str(path), "--out", str(onnx), "--rtc-inpaint"]) == 0
    served = create_backend(BackendConfig(name="onnx", path=str(onnx)))
    assert action_prefix_mode(served.spec) == "inpaint"
    request = PolicyInput(state=STATE, action_prefix=PREFIX, prefix_frozen=4)
    got = served.infer([request])[0]
    np.testing.assert_allclose(got[:4], PREFIX[:4], atol=1e-6)
    want = _backend(path, action_prefix="inpaint").infer([request])[0]  # default β = ∞
    np.testing.assert_allclose(got, want, atol=1e-4)
    # a guidance interval is baked into the graph and named on the card
    late = tmp_path / "late" / "policy.onnx"
    assert export_main(["--path", str(path), "--out", str(late), "--rtc-inpaint", "--rtc-guidance-from", "0.5"]) == 0
    served_late = create_backend(BackendConfig(name="onnx", path=str(late)))
    want_late = _backend(path, action_prefix="inpaint", rtc_guidance_from=0.5).infer([request])[0]
    np.testing.assert_allclose(served_late.infer([request])[0], want_late, atol=1e-4)
    assert np.abs(want_late[4:] - want[4:]).max() > 1e-3  # the interval changes the chunk
    assert read_card(late).model["rtc_inpaint"] == {"guidance_from": 0.5}
    assert export_main(["--path", str(path), "--out", str(tmp_path / "y.onnx"), "--rtc-guidance-from", "0.5"]) == 2
    # a prefix-trained model is not wrapped: it takes the prefix itself
    (tmp_path / "t").mkdir()
    assert export_main(["--path", str(_tiny(tmp_path / "t", prefix_conditioning=True)), "--out",
                        str(tmp_path / "x.onnx"), "--rtc-inpaint"]) == 2
