"""Injected inference latency: emulates a large VLA on a GPU in front of a fast scripted expert.

Seeded and deterministic: the same config gives the same sequence of samples. Distributions:
constant (mean), normal (mean, std = jitter), log-normal (with the given mean and std = jitter:
the heavy right tail GPU latencies show), plus occasional spikes of `spike_ms` with
`spike_probability`, never below `min_ms`.
"""

from __future__ import annotations

import math

import numpy as np

from vla_async.config import InjectedLatencyConfig


class LatencySampler:
    def __init__(self, config: InjectedLatencyConfig):
        self.config = config
        self._rng = np.random.default_rng(config.seed)

    def sample_ms(self) -> float:
        c = self.config
        if c.distribution == "constant" or c.jitter_ms == 0.0:
            value = c.mean_ms
        elif c.distribution == "normal":
            value = self._rng.normal(c.mean_ms, c.jitter_ms)
        elif c.mean_ms <= 0.0:  # lognormal needs a positive mean
            value = 0.0
        else:
            sigma2 = math.log1p((c.jitter_ms / c.mean_ms) ** 2)
            value = self._rng.lognormal(math.log(c.mean_ms) - sigma2 / 2.0, math.sqrt(sigma2))
        if c.spike_probability > 0.0 and self._rng.random() < c.spike_probability:
            value += c.spike_ms
        return float(max(value, c.min_ms, 0.0))

    def sample_s(self) -> float:
        return self.sample_ms() / 1000.0
