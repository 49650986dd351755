import numpy as np
import pytest
from core_reference import finite_derivatives, smooth
from hypothesis import given, settings
from hypothesis import strategies as st

from vla_async.config.schema import SmootherConfig
from vla_async.smoothing import Smoother, difference_operator

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
    p, v, a = smooth(sm, pos)
    np.testing.assert_allclose(p, pos, atol=1e-8)
    np.testing.assert_allclose(v, vel, atol=1e-6)
    np.testing.assert_allclose(a, acc, atol=1e-4)


def test_noise_is_reduced_and_stepwise_dims_pass_through():
    rng = np.random.default_rng(0)
    n, reps = 50, 200
    t = np.arange(n) / FPS
    truth = (0.2 + 0.5 * t - 0.3 * t**2)[:, None]
    grip = np.where(np.arange(n) < 20, 0.0, 1.0)[:, None]
    noisy = np.hstack([truth + rng.normal(0, 0.02, (n, reps)), grip])
    p, v, a = smooth(Smoother(SmootherConfig(enabled=True, degree=3), [False] * reps + [True], FPS), noisy)
    err_smoothed = np.sqrt(np.mean((p[:, :reps] - truth) ** 2))
    err_raw = np.sqrt(np.mean((noisy[:, :reps] - truth) ** 2))
    assert err_smoothed < 0.5 * err_raw  # a 4-parameter fit keeps about sqrt(4/50) of white noise
    np.testing.assert_array_equal(p[:, -1], grip[:, 0])
    assert np.all(v[:, -1] == 0) and np.all(a[:, -1] == 0)


def test_disabled_smoother_keeps_actions_and_uses_finite_differences():
    pos = np.linspace(0, 1, 10)[:, None] * np.array([[1.0, -2.0]])
    p, v, a = smooth(Smoother(SmootherConfig(enabled=False), [False, False], FPS), pos)
    np.testing.assert_array_equal(p, pos)
    np.testing.assert_allclose(v, np.broadcast_to([1 / 9 * FPS, -2 / 9 * FPS], v.shape))
    np.testing.assert_allclose(a, 0, atol=1e-9)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_short_chunks_do_not_break(n):
    pos = np.ones((n, 2))
    p, v, a = smooth(Smoother(SmootherConfig(enabled=True, degree=3), [False, False], FPS), pos)
    np.testing.assert_allclose(p, pos)
    assert p.shape == v.shape == a.shape == (n, 2)
    assert difference_operator(n, FPS).shape == (3 * n, n)


def _multi_phase(n: int = 50) -> np.ndarray:
    """descend (ramp down 3 cm over 10 ticks) → hold still for the close (8 ticks) → lift (ramp up)."""
    z = np.empty(n)
    z[:10] = np.linspace(0.08, 0.018, 10)
    z[10:18] = 0.018
    z[18:] = 0.018 + np.minimum(np.arange(1, n - 17) * 0.006, 0.07)
    return z


def test_local_fit_preserves_a_multi_phase_trajectory():
    """A sliding local cubic denoises without flattening descend → close → lift; one global cubic does not."""
    z = _multi_phase()[:, None]
    local = smooth(Smoother(SmootherConfig(enabled=True, degree=3, window=9), [False], FPS), z)[0]
    whole = smooth(Smoother(SmootherConfig(enabled=True, degree=3, window=0), [False], FPS), z)[0]
    # the bottom of the descent (where the gripper closes) is kept within a few millimetres
    assert abs(local[10:18].min() - 0.018) < 0.004
    assert np.max(np.abs(local - z)) < 0.006
    assert np.max(np.abs(whole - z)) > 2 * np.max(np.abs(local - z))


def test_operators_are_one_linear_map():
    """Smoothing is a fixed linear operator: smoothing a sum is the sum of the smoothings."""
    rng = np.random.default_rng(1)
    sm = Smoother(SmootherConfig(enabled=True, degree=3, window=9), [False] * 4, FPS)
    a, b = rng.normal(size=(50, 4)), rng.normal(size=(50, 4))
    for got, x, y in zip(smooth(sm, a + b), smooth(sm, a), smooth(sm, b), strict=True):
        np.testing.assert_allclose(got, x + y, atol=1e-9)
    op = sm.operator(50)
    np.testing.assert_allclose(sm.stacked(a).reshape(150, 4), op @ a)


def test_stepwise_dims_averaged_snapped_and_held():
    n = 30
    grip = np.where(np.arange(n) < 12, 0.9, 0.05)
    grip[5] = 0.6  # a noisy sample inside the open phase
    cfg = SmootherConfig(enabled=True, window=9, stepwise_window=3, stepwise_snap="limits")
    raw = np.column_stack([np.linspace(0, 1, n), grip])
    p, v, a = smooth(Smoother(cfg, [False, True], FPS, position_limits=[(-3, 3), (0.0, 1.0)]), raw)
    np.testing.assert_array_equal(p[:12, 1], 1.0)  # snapped to open, the noisy sample is gone
    np.testing.assert_array_equal(p[12:, 1], 0.0)  # one step to closed, then held
    assert np.all(v[:, 1] == 0) and np.all(a[:, 1] == 0)
    # without snapping, a moving average only: the noisy sample is reduced, not removed
    p2 = smooth(Smoother(cfg.model_copy(update={"stepwise_snap": "none"}), [False, True], FPS, [(-3, 3), (0, 1)]), raw)[0]
    assert abs(p2[5, 1] - 0.9) < abs(0.6 - 0.9)
    np.testing.assert_allclose(p2[1:-1, 1], (grip[:-2] + grip[1:-1] + grip[2:]) / 3)
    assert np.isclose(p2[0, 1], (grip[0] + grip[1]) / 2)  # truncated at the ends


def test_difference_operator_matches_numpy_gradient():
    rng = np.random.default_rng(2)
    for n in (1, 2, 3, 17):
        x = rng.normal(size=(n, 3))
        p, v, a = (difference_operator(n, FPS) @ x).reshape(3, n, 3)
        want_v, want_a = finite_derivatives(x, FPS)
        np.testing.assert_array_equal(p, x)
        np.testing.assert_allclose(v, want_v, atol=1e-12)
        np.testing.assert_allclose(a, want_a, atol=1e-9)


def test_positions_only_when_no_fuser_reads_derivatives():
    actions = np.sin(np.arange(20)[:, None] / 3.0 + np.arange(3))
    raw = Smoother(SmootherConfig(enabled=False), [False, False, True], FPS)
    full, positions_only = raw.stacked(actions), raw.stacked(actions, derivatives=False)
    np.testing.assert_array_equal(positions_only[0], full[0])
    assert not positions_only[1:].any() and full[1, :, :2].any()
    fitted = Smoother(SmootherConfig(enabled=True, degree=3, window=9), [False, False, True], FPS)
    np.testing.assert_array_equal(fitted.stacked(actions, derivatives=False), fitted.stacked(actions))
