import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vla_async.config.schema import SmootherConfig
from vla_async.smoothing import Smoother, finite_derivatives

FPS = 30.0


def _cubic(n: int, coeffs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = np.arange(n)[:, None] / FPS
    c0, c1, c2, c3 = coeffs
    pos = c0 + c1 * t + c2 * t**2 + c3 * t**3
    return pos, c1 + 2 * c2 * t + 3 * c3 * t**2, 2 * c2 + 6 * c3 * t


@settings(max_examples=40, deadline=None)
@given(st.integers(8, 60), st.sampled_from([0, 9, 15]), st.integers(0, 10_000))
def test_cubic_is_reproduced_with_analytic_derivatives(n, window, seed):
    coeffs = np.random.default_rng(seed).uniform(-1, 1, size=(4, 3))
    pos, vel, acc = _cubic(n, coeffs)
    sm = Smoother(SmootherConfig(enabled=True, degree=3, window=window), [False] * 3, FPS)
    p, v, a = sm(pos)
    np.testing.assert_allclose(p, pos, atol=1e-8)
    np.testing.assert_allclose(v, vel, atol=1e-6)
    np.testing.assert_allclose(a, acc, atol=1e-4)


def test_noise_is_reduced_and_stepwise_dims_pass_through():
    rng = np.random.default_rng(0)
    n, reps = 50, 200
    t = np.arange(n) / FPS
    smooth = (0.2 + 0.5 * t - 0.3 * t**2)[:, None]
    grip = np.where(np.arange(n) < 20, 0.0, 1.0)[:, None]
    noisy = np.hstack([smooth + rng.normal(0, 0.02, (n, reps)), grip])
    p, v, a = Smoother(SmootherConfig(enabled=True, degree=3), [False] * reps + [True], FPS)(noisy)
    err_smoothed = np.sqrt(np.mean((p[:, :reps] - smooth) ** 2))
    err_raw = np.sqrt(np.mean((noisy[:, :reps] - smooth) ** 2))
    assert err_smoothed < 0.5 * err_raw  # a 4-parameter fit keeps about sqrt(4/50) of white noise
    np.testing.assert_array_equal(p[:, -1], grip[:, 0])
    assert np.all(v[:, -1] == 0) and np.all(a[:, -1] == 0)


def test_disabled_smoother_keeps_actions_and_uses_finite_differences():
    pos = np.linspace(0, 1, 10)[:, None] * np.array([[1.0, -2.0]])
    p, v, a = Smoother(SmootherConfig(enabled=False), [False, False], FPS)(pos)
    np.testing.assert_array_equal(p, pos)
    np.testing.assert_allclose(v, np.broadcast_to([1 / 9 * FPS, -2 / 9 * FPS], v.shape))
    np.testing.assert_allclose(a, 0, atol=1e-9)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_short_chunks_do_not_break(n):
    pos = np.ones((n, 2))
    p, v, a = Smoother(SmootherConfig(enabled=True, degree=3), [False, False], FPS)(pos)
    np.testing.assert_allclose(p, pos)
    assert p.shape == v.shape == a.shape == (n, 2)
    assert finite_derivatives(pos, FPS)[0].shape == (n, 2)
