import math

import numpy as np
import pytest
from core_reference import (
    blend_peaks,
    make_fusion,
    quintic_blend,
    reference_rail_fuse,
    smooth,
    state_at,
    write_rows,
)
from hypothesis import example, given, settings
from hypothesis import strategies as st

from vla_async.chunk_fusion import FUSIONS, PlacedChunk
from vla_async.config.schema import FuserConfig, SmootherConfig
from vla_async.plan import Plan, Trajectory
from vla_async.quintic import quintic_basis
from vla_async.smoothing import Smoother

FPS = 30.0


def _chunk(rng: np.random.Generator, start: int, n: int, dim: int, source: int, stepwise) -> Trajectory:
    """A smooth random chunk (random cubic per joint plus an offset), smoothed like the scheduler does."""
    t = np.arange(n)[:, None] / FPS
    c = rng.uniform(-1, 1, size=(4, dim))
    raw = c[0] + c[1] * t + c[2] * t**2 + c[3] * t**3
    pos, vel, acc = smooth(Smoother(SmootherConfig(enabled=True), stepwise, FPS), raw)
    return Trajectory(start, pos, vel, acc, source)


def _plan_from(tr: Trajectory) -> Plan:
    plan = Plan(tr.pos.shape[1])
    plan.write_rows(tr.start_tick, tr.pva, tr.source)
    return plan


def _basis_bounds():
    tau = np.linspace(0, 1, 2001)
    _, dh, ddh = quintic_basis(tau)
    return np.abs(dh).max(axis=0), np.abs(ddh).max(axis=0)


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 30), st.integers(1, 12), st.booleans())
def test_rail_is_c2_continuous_at_the_junction(seed, offset, blend, adaptive):
    rng = np.random.default_rng(seed)
    stepwise = [False, False, True]
    old = _chunk(rng, 0, 50, 3, source=1, stepwise=stepwise)
    new = _chunk(rng, offset // 2, 50, 3, source=2, stepwise=stepwise)
    plan = _plan_from(old)
    j = max(offset, new.start_tick)
    p0, v0, a0 = (x.copy() for x in state_at(plan, j))
    fuser = make_fusion(FuserConfig(kind="rail", blend_ticks=blend, adaptive_blend=adaptive), stepwise, FPS)
    n_blend = fuser.merge(plan, new, j)
    assert n_blend >= 1
    g = [0, 1]
    # C2 at the junction: the plan's stored p, v, a at j are the executing trajectory's
    np.testing.assert_allclose(state_at(plan, j)[0][g], p0[g], atol=1e-9)
    np.testing.assert_allclose(state_at(plan, j)[1][g], v0[g], atol=1e-9)
    np.testing.assert_allclose(state_at(plan, j)[2][g], a0[g], atol=1e-9)
    # ... and the blend lands on the new chunk's p, v, a at j + L, after which the plan is the new chunk
    i_new = j + n_blend - new.start_tick
    for got, want in zip(state_at(plan, j + n_blend), (new.pos, new.vel, new.acc), strict=True):
        np.testing.assert_allclose(got[g], want[i_new][g], atol=1e-9)
    assert plan.end_tick == new.end_tick
    # velocity inside the blend is bounded by the chunks' own derivatives and the position gap
    T = n_blend / FPS
    dmax, _ = _basis_bounds()
    rows = plan.rows()
    bv = rows.vel[plan.index(j) : plan.index(j) + n_blend][:, g]
    pf, vf, af = new.pos[i_new][g], new.vel[i_new][g], new.acc[i_new][g]
    bound = (dmax[0] * np.abs(pf - p0[g]) / T + dmax[1] * np.abs(v0[g]) + dmax[2] * T * np.abs(a0[g])
             + dmax[4] * np.abs(vf) + dmax[5] * T * np.abs(af))
    assert np.all(np.abs(bv) <= bound + 1e-9)
    # the commanded positions themselves (finite differences over the blend) obey the same bound
    seg = rows.pos[plan.index(j) : plan.index(j) + n_blend + 1][:, g]
    assert np.all(np.abs(np.diff(seg, axis=0)) * FPS <= bound + 1e-9)
    # stepwise dims step to the new chunk at once
    np.testing.assert_array_equal(rows.pos[plan.index(j):, 2], new.pos[j - new.start_tick:, 2])
    # everything before j is untouched
    np.testing.assert_array_equal(rows.pos[: plan.index(j)], old.pos[:j])


def test_adaptive_blend_grows_with_mismatch_and_is_bounded():
    fuser = make_fusion(FuserConfig(kind="rail", blend_ticks=4, max_blend_ticks=20, blend_speed=1.0), [False], FPS)
    assert fuser.blend_length(0.0, 50) == 4
    assert fuser.blend_length(0.3, 50) == math.ceil(0.3 * FPS)
    assert fuser.blend_length(10.0, 50) == 20
    assert fuser.blend_length(10.0, 6) == 5  # never longer than the chunk allows


def test_latest_only_switches_abruptly():
    rng = np.random.default_rng(1)
    old, new = _chunk(rng, 0, 20, 2, 1, [False, False]), _chunk(rng, 5, 20, 2, 2, [False, False])
    plan = _plan_from(old)
    make_fusion(FuserConfig(kind="latest_only"), [False, False], FPS).merge(plan, new, 8)
    rows = plan.rows()
    np.testing.assert_array_equal(rows.pos[:8], old.pos[:8])
    np.testing.assert_array_equal(rows.pos[8:], new.pos[3:])
    assert set(rows.source[8:]) == {2} and plan.end_tick == 25


def test_lerobot_mixes_overlap_03_old_07_new():
    old = Trajectory(0, np.zeros((10, 1)), np.zeros((10, 1)), np.zeros((10, 1)), 1)
    new = Trajectory(4, np.ones((10, 1)), np.zeros((10, 1)), np.zeros((10, 1)), 2)
    plan = _plan_from(old)
    make_fusion(FuserConfig(kind="lerobot"), [False], FPS).merge(plan, new, 5)
    pos = plan.rows().pos
    np.testing.assert_allclose(pos[:5, 0], 0)
    np.testing.assert_allclose(pos[5:10, 0], 0.7)  # overlap
    np.testing.assert_allclose(pos[10:, 0], 1.0)  # new only
    assert plan.end_tick == 14


def test_temporal_ensemble_matches_act_weights():
    m = 0.5
    fuser = make_fusion(FuserConfig(kind="temporal_ensemble", ensemble_m=m), [False], FPS)
    values = [1.0, 4.0, -2.0, 7.0]
    plan = Plan(1)
    for i, val in enumerate(values):
        tr = Trajectory(i, np.full((10, 1), val), np.zeros((10, 1)), np.zeros((10, 1)), i)
        plan.drop_before(i)
        if len(plan) == 0:
            plan.hold_until(i, i, np.zeros(1))
        fuser.merge(plan, tr, i)
    # tick 3 was predicted by all four chunks; i = 0 is the oldest
    w = np.exp(-m * np.arange(4))
    assert plan.position(3)[0] == pytest.approx(np.dot(w, values) / w.sum())
    assert plan.count_at(3) == 4


def test_registry_has_every_fuser_and_rejects_unknown():
    assert set(FUSIONS) == {"latest_only", "lerobot", "temporal_ensemble", "rail"}
    with pytest.raises(ValueError, match="unknown fuser"):
        make_fusion(FuserConfig.model_construct(kind="nope"), [False], FPS)


def test_blend_operator_equals_the_hermite_formula():
    """The cached one-product blend is the paper's quintic: p = h0 p0 + h1 v0 T + h2 a0 T² + h3 pf + h4 vf T + h5 af T²."""
    rng = np.random.default_rng(3)
    p0, v0, a0, pf, vf, af = rng.normal(size=(6, 4))
    n, fps = 7, 30.0
    T = n / fps
    h, dh, ddh = quintic_basis(np.arange(n) / n)
    c = np.stack([p0, v0 * T, a0 * T * T, pf, vf * T, af * T * T])
    bp, bv, ba = quintic_blend(p0, v0, a0, pf, vf, af, n, fps)
    np.testing.assert_allclose(bp, h @ c)
    np.testing.assert_allclose(bv, dh @ c / T)
    np.testing.assert_allclose(ba, ddh @ c / T**2)


def test_rail_steps_stepwise_dims_and_blends_gradual_ones():
    fuser = make_fusion(FuserConfig(kind="rail", blend_ticks=5, adaptive_blend=False), [False, True], FPS)
    plan = Plan(2)
    n = 20
    write_rows(plan, 0, np.zeros((n, 2)), np.zeros((n, 2)), np.zeros((n, 2)), 0)
    new = np.column_stack([np.full(n, 0.5), np.ones(n)])
    assert fuser.merge(plan, Trajectory(3, new, np.zeros((n, 2)), np.zeros((n, 2)), 1), 3) == 5
    pos = plan.rows().pos
    np.testing.assert_array_equal(pos[3:, 1], 1.0)  # gripper switches at the junction
    assert pos[3, 0] == 0.0 and np.all(np.diff(pos[3:9, 0]) > 0)  # arm blends from the old plan
    np.testing.assert_allclose(pos[8:, 0], 0.5)


def test_blend_peaks_match_a_dense_sampling_of_the_quintic():
    rng = np.random.default_rng(3)
    p0, v0, a0, pf, vf, af = rng.normal(size=(6, 4))
    T = 0.2
    n = 4000  # dense: fps chosen so that n ticks last T
    bp, bv, ba = quintic_blend(p0, v0, a0, pf, vf, af, n, n / T)
    vel, acc, jerk = blend_peaks(p0, v0, a0, pf[None], vf[None], af[None], np.array([T]))
    np.testing.assert_allclose(vel[0], np.abs(bv).max(axis=0), rtol=0.02)
    np.testing.assert_allclose(acc[0], np.abs(ba).max(axis=0), rtol=0.02)
    dense_jerk = np.abs(np.diff(ba, axis=0)).max(axis=0) * (n / T)
    np.testing.assert_allclose(jerk[0], dense_jerk, rtol=0.01)


_PEAK_SAMPLING_TOL = 0.02  # how far a sampled peak may sit below the true one (see the dense-sampling test)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.5, 5.0), st.floats(5.0, 80.0), st.floats(50.0, 5000.0))
@example(247, 2.0, 15.875, 510.0)  # a tick 0.5 % above the sampled acceleration peak
def test_limited_blend_is_the_shortest_within_the_limits(seed, max_vel, max_acc, max_jerk):
    rng = np.random.default_rng(seed)
    stepwise = [False, False, True]
    old = _chunk(rng, 0, 50, 3, source=1, stepwise=stepwise)
    new = _chunk(rng, 5, 50, 3, source=2, stepwise=stepwise)
    plan = _plan_from(old)
    j = 10
    p0, v0, a0 = (x.copy() for x in state_at(plan, j))
    cfg = FuserConfig(kind="rail", blend_ticks=12, adaptive_blend=False, blend_limits=True, min_blend_ticks=2,
                      blend_max_jerk=max_jerk)
    fuser = make_fusion(cfg, stepwise, FPS, (np.full(3, max_vel), np.full(3, max_acc)))
    n_blend = fuser.merge(plan, new, j)
    assert 2 <= n_blend <= 12
    g = [0, 1]
    i0 = j - new.start_tick

    def within(n: int) -> bool:
        v, a, jk = blend_peaks(p0[g], v0[g], a0[g], new.pos[i0 + n][None, g], new.vel[i0 + n][None, g],
                               new.acc[i0 + n][None, g], np.array([n / FPS]))
        return bool((v <= max_vel).all() and (a <= max_acc).all() and (jk <= max_jerk).all())

    if n_blend < 12:  # a feasible length was found: the blend's own samples respect the limits ...
        assert within(n_blend)
        seg = slice(plan.index(j), plan.index(j) + n_blend)
        rows = plan.rows()
        # the limits are checked at PEAK_SAMPLES points of τ, not at every tick: a tick between two sample
        # points may sit slightly above (hypothesis found 0.5 %); the safety layer enforces the hard limits
        assert np.all(np.abs(rows.vel[seg][:, g]) <= max_vel * (1 + _PEAK_SAMPLING_TOL))
        assert np.all(np.abs(rows.acc[seg][:, g]) <= max_acc * (1 + _PEAK_SAMPLING_TOL))
    # ... and no shorter one would have
    assert not any(within(n) for n in range(2, n_blend))
    # C2 at the junction still holds
    np.testing.assert_allclose(state_at(plan, j)[1][g], v0[g], atol=1e-9)
    np.testing.assert_allclose(state_at(plan, j)[2][g], a0[g], atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.2, 5.0), st.floats(2.0, 80.0), st.floats(20.0, 5000.0),
       st.integers(3, 30))
def test_batched_blend_search_equals_checking_each_length(seed, max_vel, max_acc, max_jerk, longest):
    """`limited_length` (first length alone, then all others in one batched product) picks the length that a
    plain loop over lengths, each checked with `blend_peaks`, picks."""
    rng = np.random.default_rng(seed)
    stepwise = [False, True, False]
    new = _chunk(rng, 0, 50, 3, source=2, stepwise=stepwise)
    x0 = rng.normal(size=(3, 3)) * [[0.3], [1.0], [5.0]]
    cfg = FuserConfig(kind="rail", blend_limits=True, min_blend_ticks=2, blend_max_jerk=max_jerk)
    fuser = make_fusion(cfg, stepwise, FPS, (np.full(3, max_vel), np.full(3, max_acc)))
    g = [0, 2]
    want = longest
    for n in range(2, longest + 1):
        v, a, jk = blend_peaks(x0[0, g], x0[1, g], x0[2, g], new.pos[n][None, g], new.vel[n][None, g],
                               new.acc[n][None, g], np.array([n / FPS]))
        if (v <= max_vel).all() and (a <= max_acc).all() and (jk <= max_jerk).all():
            want = n
            break
    assert fuser.limited_length(x0, new, longest) == want


_STEPWISE_LAYOUTS = [[False, False, True], [True, False, False, False], [False] * 4, [True, False, False, True]]


def _rail(stepwise, cfg: FuserConfig, limits, window: int = 9, step_window: int = 1, snap: str = "none"):
    """A rail fusion with a smoother (so with its fast path), position limits ±1."""
    smoother = SmootherConfig(enabled=True, degree=3, window=window, stepwise_window=step_window, stepwise_snap=snap)
    return make_fusion(cfg, stepwise, FPS, limits, smoother=smoother, position_limits=[(-1.0, 1.0)] * len(stepwise))


@settings(max_examples=120, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(_STEPWISE_LAYOUTS),
       st.integers(3, 50), st.integers(0, 8), st.booleans(), st.booleans(), st.floats(0.2, 5.0),
       st.floats(2.0, 80.0), st.floats(20.0, 5000.0), st.integers(1, 12), st.sampled_from([0, 5, 9]),
       st.sampled_from([1, 3]), st.sampled_from(["none", "limits"]), st.booleans())
def test_fast_fuse_equals_smoothing_then_rail_merge(
    seed, stepwise, n, late, lead, adaptive, max_vel, max_acc, max_jerk, blend, window, step_window, snap, limits
):
    """`RailFusion.fuse` (one precomputed product per chunk) = smoothing + anchor row + `RailFusion.merge`, step by
    step: the same plan rows (p, v, a, source, count) within 1e-9 and the same blend length, on random chunks, plan
    states, junction offsets, with and without limits (the shortest-length check passing or not), stepwise
    columns averaged (one more product) or snapped to levels (the direct path), contiguous or not."""
    rng = np.random.default_rng(seed)
    dim = len(stepwise)
    cfg = FuserConfig(kind="rail", blend_ticks=blend, adaptive_blend=adaptive, blend_limits=limits,
                      min_blend_ticks=2, blend_max_jerk=max_jerk)
    fusion = _rail(stepwise, cfg, (np.full(dim, max_vel), np.full(dim, max_acc)), window, step_window, snap)
    k = 20
    rows = rng.normal(size=(3, 10, dim)) * [[[0.5]], [[2.0]], [[20.0]]]
    plans = [Plan(dim, capacity=16), Plan(dim, capacity=16)]  # small: the write may move or grow the buffer
    for plan in plans:
        plan.write_rows(k - 6, rows, 7)
    actions = 0.5 * np.sin(np.arange(n)[:, None] / 9.0 + rng.uniform(0, 6, dim)) + rng.normal(0, 0.3, dim)
    late = min(late, n - 1)
    start = k + 1 if lead else k - late  # the scheduler's two cases; either way the blend is anchored at k
    ref_len = reference_rail_fuse(fusion, plans[0], actions, start, int(lead), k, 9)
    got_len = fusion.fuse(plans[1], PlacedChunk(start, actions, 9), k_now=k + 1)
    assert got_len == ref_len
    a, b = plans[0].rows(), plans[1].rows()
    assert (a.start_tick, a.end_tick) == (b.start_tick, b.end_tick)
    np.testing.assert_allclose(b.pva, a.pva, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(b.source, a.source)
    np.testing.assert_array_equal(b.count, a.count)


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(_STEPWISE_LAYOUTS[:3] + _STEPWISE_LAYOUTS[3:]),
       st.integers(8, 50), st.integers(1, 12), st.integers(1, 12), st.sampled_from([1, 3]), st.booleans(),
       st.floats(20.0, 5000.0))
def test_deferred_rows_and_the_next_chunk_equal_the_step_by_step_path(
    seed, stepwise, n, eager, advance, step_window, snap, max_jerk
):
    """With only `eager` rows written on arrival (the rest left to the plan), a second chunk fused `advance`
    ticks later (reading the plan's state at its junction, possibly a deferred row) leaves the same plan as the
    step-by-step path that writes everything at once."""
    rng = np.random.default_rng(seed)
    dim = len(stepwise)
    cfg = FuserConfig(kind="rail", blend_ticks=8, adaptive_blend=True, blend_limits=True, min_blend_ticks=2,
                      blend_max_jerk=max_jerk)
    fusion = _rail(stepwise, cfg, (np.full(dim, 3.0), np.full(dim, 40.0)), 9, step_window,
                   "limits" if snap else "none")
    ref, fast = Plan(dim, capacity=16), Plan(dim, capacity=16)
    k = 20
    for source in (1, 2):
        actions = 0.5 * np.sin(np.arange(n)[:, None] / 7.0 + rng.uniform(0, 6, dim)) + rng.normal(0, 0.05, (n, dim))
        for plan in (ref, fast):  # a chunk for the next tick k + 1, blended from the last commanded one
            plan.drop_before(k)
            plan.hold_until(k, k + 1, np.zeros(dim))
        want = reference_rail_fuse(fusion, ref, actions, k + 1, 1, k, source)
        got = fusion.fuse(fast, PlacedChunk(k + 1, actions, source), k_now=k + 1, write_until=k + eager)
        assert got == want
        k += min(advance, n - 2)
    a, b = ref.rows(), fast.rows()
    np.testing.assert_allclose(b.pva, a.pva, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(b.source, a.source)
