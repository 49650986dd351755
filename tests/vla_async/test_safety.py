import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sched_helpers import make_robot

from vla_async.config.schema import SafetyConfig
from vla_async.safety import SafetyLayer

CFG = SafetyConfig(limit_margin=0.1, max_velocity=2.0, max_acceleration=20.0, max_step=0.05)


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 100_000), st.floats(0.05, 5.0), st.integers(5, 80))
def test_limits_always_hold(seed, scale, n):
    robot = make_robot(dof=3, limit=1.0)
    layer = SafetyLayer(CFG, robot)
    rng = np.random.default_rng(seed)
    layer.reset(rng.uniform(-0.9, 0.9, size=4))
    dt = 1 / robot.fps
    cmds = [layer.position.copy()]
    for _ in range(n):
        kind = rng.integers(3)
        target = rng.uniform(-scale, scale, 4) if kind else cmds[-1] + rng.normal(0, scale * 0.05, 4)
        cmds.append(layer.apply(target) if kind < 2 else layer.hold())
    c = np.array(cmds)
    eps = 1e-9
    assert np.all(c >= -0.9 - eps) and np.all(c <= 0.9 + eps)  # limits shrunk by the margin, gripper too
    g = c[:, :3]
    v = np.diff(g, axis=0) / dt
    assert np.all(np.abs(np.diff(g, axis=0)) <= 0.05 + eps)
    assert np.all(np.abs(v) <= 2.0 + eps)
    assert np.all(np.abs(np.diff(v, axis=0)) / dt <= 20.0 + 1e-6)


def test_stepwise_dim_is_exempt_from_rate_limits_but_clamped():
    layer = SafetyLayer(CFG, make_robot(dof=1, limit=1.0))
    layer.reset(np.zeros(2))
    out = layer.apply(np.array([0.0, 0.8]))
    assert out[1] == 0.8
    out = layer.apply(np.array([0.0, 5.0]))
    assert out[1] == pytest.approx(0.9)


def test_come_to_rest_decelerates_monotonically_and_stops():
    cfg = SafetyConfig(max_velocity=5.0, max_acceleration=100.0, max_step=1.0, rest_deceleration=3.0)
    robot = make_robot(dof=2, gripper=False, limit=100.0)
    layer = SafetyLayer(cfg, robot)
    layer.reset(np.zeros(2))
    for k in range(1, 20):  # accelerate to ~1.5 units/s
        layer.apply(np.array([0.05, -0.025]) * k * (k + 1) / 2)
    speeds = []
    for _ in range(80):
        layer.come_to_rest()
        speeds.append(np.abs(layer.velocity).max())
    assert speeds[0] > 0
    assert all(b <= a + 1e-12 for a, b in zip(speeds[:-1], speeds[1:], strict=True))
    assert speeds[-1] == 0
    decel = -np.diff(speeds) * robot.fps
    assert np.all(decel <= 3.0 + 1e-6)


def test_disabled_safety_passes_targets_through():
    layer = SafetyLayer(SafetyConfig(enabled=False), make_robot(dof=1))
    layer.reset(np.zeros(2))
    np.testing.assert_array_equal(layer.apply(np.array([2.5, 1.0])), [2.5, 1.0])


def test_bad_per_joint_list_is_rejected():
    with pytest.raises(ValueError, match="max_velocity"):
        SafetyLayer(SafetyConfig(max_velocity=[1.0, 2.0]), make_robot(dof=3))


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 100_000), st.booleans(), st.floats(0.0, 0.3), st.floats(0.5, 8.0), st.floats(5.0, 200.0),
       st.floats(0.02, 0.5), st.floats(-1.5, 1.5))
def test_fast_layer_commands_equal_the_reference(seed, gripper, margin, max_vel, max_acc, max_step, start):
    """The displacement-window layer (skips the braking bound while provably far from the limits) commands what the
    straightforward one did, tick by tick: far from and near the limits, starting outside them, through holds
    and the watchdog's stop."""
    from safety_reference import ReferenceSafetyLayer

    robot = make_robot(dof=3, gripper=gripper, limit=1.0)
    cfg = SafetyConfig(limit_margin=margin, max_velocity=max_vel, max_acceleration=max_acc, max_step=max_step)
    fast, ref = SafetyLayer(cfg, robot), ReferenceSafetyLayer(cfg, robot)
    rng = np.random.default_rng(seed)
    p0 = np.full(robot.action_dim, start) + rng.normal(0, 0.1, robot.action_dim)
    fast.reset(p0)
    ref.reset(p0)
    target = p0.copy()
    for _ in range(120):
        kind = rng.integers(10)
        if kind < 6:  # drift toward a random point, sometimes past the limits
            target = target + rng.normal(0, 0.05, robot.action_dim) + 0.02 * np.sign(rng.normal(size=robot.action_dim))
            a, b = fast.apply(target), ref.apply(target)
        elif kind < 8:  # a jump
            target = rng.uniform(-1.4, 1.4, robot.action_dim)
            a, b = fast.apply(target), ref.apply(target)
        elif kind == 8:
            a, b = fast.hold(), ref.hold()
        else:
            a, b = fast.come_to_rest(), ref.come_to_rest()
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)
        np.testing.assert_allclose(fast.velocity, ref.velocity, rtol=0, atol=1e-6)


def test_the_fast_clip_equals_the_public_one_bit_for_bit():
    """The safety layer's clip fast path (numpy's own clip ufunc, when present) is `min(max(x, lo), hi)` exactly:
    the same values, NaN and infinities included, with and without `out`, also where lo > hi."""
    from vla_async.safety import _clip, _fast_clip, _public_clip

    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 200)) * 3
    x[0, :5] = [np.nan, np.inf, -np.inf, 0.0, -0.0]
    lo, hi = rng.normal(size=200), rng.normal(size=200)  # about half the pairs have lo > hi
    lo[:3] = [np.nan, -np.inf, 1.0]
    np.testing.assert_array_equal(_clip(x, lo, hi), _public_clip(x, lo, hi))
    out_fast, out_public = np.empty_like(x), np.empty_like(x)
    _clip(x, lo, hi, out=out_fast)
    _public_clip(x, lo, hi, out=out_public)
    np.testing.assert_array_equal(out_fast, out_public)
    assert _clip is (_fast_clip() or _public_clip)
