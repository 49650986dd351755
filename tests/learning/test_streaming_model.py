"""Streamed chunks in the flow policy (FASTER's horizon-aware schedule): near-term rows are final after fewer
Euler steps, a partial run's final rows equal the whole chunk's, and the torch backend streams them."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from policy_server.backend import BackendError, PolicyInput  # noqa: E402
from policy_server.backends.torch_backend import TorchBackend  # noqa: E402
from policy_server.learning.model import (  # noqa: E402
    VisuomotorPolicy,
    clean_rows_per_step,
    horizon_schedule,
)
from policy_server.learning.train import FACTORY, warm_start  # noqa: E402
from policy_server.model_io import STATE_KEY, ModelCard, TensorSpec, write_card  # noqa: E402
from vla_async.config import BackendConfig  # noqa: E402
from vla_async.specs import PolicySpec, streaming_plan  # noqa: E402

H, A, STEPS = 12, 3, 6


def test_the_schedule_finishes_row_0_after_one_step_and_the_last_row_after_the_last():
    u = horizon_schedule(H, STEPS)
    assert u[0] == pytest.approx(1 / STEPS) and u[-1] == pytest.approx(1.0) and list(u) == sorted(u)
    rows = clean_rows_per_step(u, STEPS)
    assert rows[0] == 1 and rows[-1] == H and list(rows) == sorted(rows) and len(set(rows)) == STEPS


def _model(flow_target: str = "data", **extra) -> VisuomotorPolicy:
    m = VisuomotorPolicy(state_dim=A, chunk_length=H, cameras=[], vocab_size=0, head="flow", flow_steps=STEPS,
                         width=48, seed=3, flow_target=flow_target, streaming=True, **extra)
    m.set_normalisation(torch.zeros(A), torch.ones(A), torch.zeros(H, A), torch.full((H, A), 0.3))
    torch.nn.init.normal_(m.velocity[-1].weight, std=0.5)  # an untrained but far from trivial denoiser
    return m.eval()


@pytest.mark.parametrize("flow_target", ["data", "velocity"])
def test_rows_final_after_a_partial_run_equal_the_whole_chunk(flow_target):
    m = _model(flow_target)
    state = torch.randn(4, A)
    with torch.no_grad():
        whole = m(state)
        cond = m.condition(state, [], None, None)
        steps = [(rows, m.to_actions(x, state)) for rows, x in m.sample_steps(cond)]
    assert [r for r, _ in steps] == list(m.clean_after) and steps[-1][0] == H
    torch.testing.assert_close(steps[-1][1], whole, rtol=0, atol=1e-6)
    for rows, partial in steps[:-1]:
        torch.testing.assert_close(partial[:, :rows], whole[:, :rows], rtol=0, atol=1e-6)
        assert not torch.allclose(partial[:, rows:], whole[:, rows:], atol=1e-3)  # the rest is not done yet


def test_training_loss_is_finite_and_the_denoiser_sees_per_row_times():
    m = _model()
    state, target = torch.randn(8, A), torch.randn(8, H, A)
    gen = torch.Generator().manual_seed(0)
    loss = m.loss(state, [], None, None, target, generator=gen)
    assert torch.isfinite(loss) and loss.requires_grad
    # the per-row τ is an input of the denoiser
    x = torch.zeros(1, H * A)
    cond = m.condition(torch.zeros(1, A), [], None, None)
    t = torch.zeros(1)
    a = m.velocity_at(x, t, cond, torch.zeros(1, H))
    b = m.velocity_at(x, t, cond, torch.ones(1, H))
    assert not torch.allclose(a, b)


def _save(tmp_path, model: VisuomotorPolicy, kwargs: dict):
    names = tuple(f"j{i}" for i in range(A))
    spec = PolicySpec(name="tiny-stream", state_names=names, action_names=names, chunk_length=H, fps=30.0)
    path = tmp_path / "policy.pt"
    torch.save(model.state_dict(), path)
    write_card(path, ModelCard(spec=spec, inputs=(TensorSpec(STATE_KEY, "state", (A,)),),
                               model={"factory": FACTORY, "kwargs": kwargs}))
    return path


def save_tiny_streaming_policy(tmp_path):
    kwargs = dict(state_dim=A, chunk_length=H, cameras=[], vocab_size=0, head="flow", flow_steps=STEPS, width=48,
                  seed=3, streaming=True)
    m = VisuomotorPolicy(**kwargs)
    m.set_normalisation(torch.zeros(A), torch.ones(A), torch.zeros(H, A), torch.full((H, A), 0.3))
    torch.nn.init.normal_(m.velocity[-1].weight, std=0.5)
    return _save(tmp_path, m, kwargs)


def test_the_torch_backend_declares_and_streams_the_first_final_rows(tmp_path):
    path = save_tiny_streaming_policy(tmp_path)
    backend = TorchBackend(BackendConfig(name="torch", path=str(path), options={"threads": 1, "stream_first_rows": 4}))
    plan = streaming_plan(backend.spec)
    assert plan is not None and plan.first_rows >= 4 and plan.first_step < STEPS
    batch = [PolicyInput(state=np.full(A, v, np.float32)) for v in (0.1, -0.2)]
    whole = backend.infer(batch)
    parts = list(backend.infer_stream(batch))
    assert [rows for rows, _ in parts] == [rows for _, rows in plan.sends] and parts[-1][0] == H and len(parts) > 2
    for rows, chunks in parts:
        for i in range(2):
            np.testing.assert_allclose(chunks[i][:rows], whole[i][:rows], atol=1e-6)
    off = TorchBackend(BackendConfig(name="torch", path=str(path), options={"threads": 1, "streaming": False}))
    assert streaming_plan(off.spec) is None and len(list(off.infer_stream(batch))) == 1


def test_streaming_options_are_checked(tmp_path):
    path = save_tiny_streaming_policy(tmp_path)
    with pytest.raises(BackendError, match="stream_first_rows"):
        TorchBackend(BackendConfig(name="torch", path=str(path), options={"stream_first_rows": "many"}))
    kwargs = dict(state_dim=A, chunk_length=H, cameras=[], vocab_size=0, head="flow", flow_steps=STEPS, width=48)
    (tmp_path / "plain").mkdir()
    plain = _save(tmp_path / "plain", VisuomotorPolicy(**kwargs), kwargs)
    with pytest.raises(BackendError, match="streaming"):
        TorchBackend(BackendConfig(name="torch", path=str(plain), options={"streaming": True}))


def test_a_streaming_model_warm_starts_from_a_plain_flow_model():
    kwargs = dict(state_dim=A, chunk_length=H, cameras=[], vocab_size=0, head="flow", flow_steps=STEPS, width=48)
    plain = VisuomotorPolicy(**kwargs)
    stream = VisuomotorPolicy(**kwargs, streaming=True)
    warm_start(stream, plain.state_dict())  # the per-row τ columns start at zero
    assert torch.count_nonzero(stream.velocity[0].weight[:, -H:]) == 0
