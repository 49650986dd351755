import numpy as np

from sim.injected_latency import LatencySampler
from vla_async.config import InjectedLatencyConfig


def _samples(n=4000, **kw):
    s = LatencySampler(InjectedLatencyConfig(**kw))
    return np.array([s.sample_ms() for _ in range(n)])


def test_constant_and_zero():
    assert set(_samples(10, mean_ms=120.0)) == {120.0}
    assert set(_samples(10)) == {0.0}
    assert LatencySampler(InjectedLatencyConfig(mean_ms=250.0)).sample_s() == 0.25


def test_seeded_and_deterministic():
    kw = dict(distribution="lognormal", mean_ms=100.0, jitter_ms=30.0, spike_probability=0.1, spike_ms=200.0, seed=3)
    np.testing.assert_array_equal(_samples(100, **kw), _samples(100, **kw))
    assert not np.array_equal(_samples(100, **kw), _samples(100, **{**kw, "seed": 4}))


def test_normal_and_lognormal_moments():
    normal = _samples(distribution="normal", mean_ms=100.0, jitter_ms=10.0)
    assert abs(normal.mean() - 100.0) < 1.5 and abs(normal.std() - 10.0) < 1.5
    logn = _samples(distribution="lognormal", mean_ms=100.0, jitter_ms=40.0)
    assert abs(logn.mean() - 100.0) < 4.0 and abs(logn.std() - 40.0) < 6.0
    assert np.median(logn) < logn.mean()  # right-skewed
    assert logn.min() > 0


def test_spikes_and_floor():
    spiky = _samples(mean_ms=50.0, spike_probability=0.2, spike_ms=300.0)
    assert set(spiky) == {50.0, 350.0}
    assert 0.15 < np.mean(spiky == 350.0) < 0.25
    floored = _samples(distribution="normal", mean_ms=10.0, jitter_ms=50.0, min_ms=5.0)
    assert floored.min() == 5.0
