import math

import numpy as np
import pytest
from core_reference import quantile
from hypothesis import given, settings
from hypothesis import strategies as st

from vla_async.config.schema import DelayConfig
from vla_async.latency import DelayEstimator


def test_fixed_mode_ignores_samples():
    est = DelayEstimator(DelayConfig(mode="fixed", fixed_ticks=4), fps=30)
    est.add_sample(1.0)
    assert est.delay_ticks == 4 and est.delay_ticks_ceil == 4 and math.isclose(est.delay_s, 4 / 30)


def test_warmup_samples_seed_the_estimate_but_stay_out_of_the_window():
    """Before any sample, fixed_ticks; a warm-up sample then seeds d̂ (the first requests roll forward by
    a measured latency, not a 1-tick guess) but is not kept: the first usable sample replaces it."""
    est = DelayEstimator(DelayConfig(fixed_ticks=3, warmup_samples=2, quantile=1.0), fps=10)
    assert est.delay_ticks == 3
    est.add_sample(0.5)  # cold start: seeds d̂
    assert math.isclose(est.delay_ticks, 5.0) and est.usable_samples == 0
    est.add_sample(0.9)
    assert math.isclose(est.delay_ticks, 9.0) and est.usable_samples == 0
    est.add_sample(0.2)
    assert math.isclose(est.delay_ticks, 2.0) and est.usable_samples == 1


def test_quantile_margin_and_window_forgetting():
    est = DelayEstimator(DelayConfig(window=4, quantile=0.5, margin_ticks=1.5, warmup_samples=0), fps=100)
    for s in (0.10, 0.10, 0.10, 0.10):
        est.add_sample(s)
    assert math.isclose(est.delay_ticks, 11.5)
    assert est.delay_ticks_ceil == 12
    for s in (0.02, 0.02, 0.02, 0.02):  # window of 4: the slow samples are gone
        est.add_sample(s)
    assert math.isclose(est.delay_ticks, 3.5)


def test_clamped_and_bad_samples_ignored():
    est = DelayEstimator(DelayConfig(min_ticks=2, max_ticks=5, warmup_samples=0), fps=30)
    est.add_sample(0.0)
    assert est.delay_ticks == 2
    est.add_sample(10.0)
    assert est.delay_ticks == 5
    before = est.samples_seen
    est.add_sample(float("nan"))
    est.add_sample(-1.0)
    assert est.samples_seen == before


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 2.0), min_size=1, max_size=50), st.floats(0, 1))
def test_estimate_is_the_quantile_of_the_window(samples, q):
    cfg = DelayConfig(window=10, quantile=q, warmup_samples=0, max_ticks=1000)
    est = DelayEstimator(cfg, fps=30)
    for s in samples:
        est.add_sample(s)
    expect = np.quantile(samples[-10:], q) * 30
    assert math.isclose(est.delay_ticks, expect, rel_tol=1e-9, abs_tol=1e-9)
    assert est.delay_ticks_ceil >= est.delay_ticks - 1e-9


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 10), min_size=1, max_size=30), st.floats(0, 1))
def test_fast_quantile_equals_numpy(samples, q):
    assert math.isclose(quantile(samples, q), float(np.quantile(samples, q)), rel_tol=1e-12, abs_tol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 2.0), min_size=1, max_size=60), st.integers(1, 12), st.floats(0.0, 1.0))
def test_incremental_sorted_window_equals_sorting_the_window(samples, window, q):
    """The bisection-kept sorted window gives the quantile of the last `window` samples, as sorting them does."""
    est = DelayEstimator(DelayConfig(window=window, warmup_samples=0, quantile=q, margin_ticks=0.0, min_ticks=0,
                                     max_ticks=10_000), 30.0)
    for i, s in enumerate(samples):
        est.add_sample(s)
        want = quantile(samples[max(0, i + 1 - window) : i + 1], q) * 30.0
        assert est.delay_ticks == pytest.approx(want, rel=1e-12, abs=1e-12)
