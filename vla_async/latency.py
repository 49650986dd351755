"""Delay estimation d̂: capture → chunk usable, measured on the client's own monotonic clock.

No clock synchronisation between machines is needed: both ends of every sample are client times.
d̂ = quantile of the last `window` samples (after `warmup_samples` are skipped) + `margin_ticks`,
clamped to `[min_ticks, max_ticks]`; `fixed_ticks` until the first sample (a warm-up sample seeds d̂ until the
first usable one), or always when `mode = fixed`. The estimate is recomputed when a sample arrives, so reading it per tick is free.
"""

from __future__ import annotations

import bisect
import math
from collections import deque

from vla_async.config.schema import DelayConfig


def sorted_quantile(xs: list[float], q: float) -> float:
    """numpy's default (linear) quantile of samples sorted ascending, for the few samples of a latency window
    without numpy's overhead."""
    if not xs:
        raise ValueError("quantile of no samples")
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


class DelayEstimator:
    def __init__(self, config: DelayConfig, fps: float):
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.config = config
        self.fps = float(fps)
        self._window: deque[float] = deque(maxlen=config.window)
        self._sorted: list[float] = []  # the window's samples in ascending order (kept by bisection)
        self.samples_seen = 0
        # the config's values as plain floats: `add_sample` runs on the tick a chunk arrives
        self._fixed, self._warmup, self._q = config.mode == "fixed", config.warmup_samples, float(config.quantile)
        self._margin = float(config.margin_ticks)
        self._min_ticks, self._max_ticks = float(config.min_ticks), float(max(config.max_ticks, config.min_ticks))
        self._set(float(config.fixed_ticks))

    def _set(self, ticks: float) -> None:
        self._ticks = min(max(ticks, self._min_ticks), self._max_ticks)
        self.delay_ticks_ceil = math.ceil(self._ticks - 1e-9)  # the first tick a chunk requested now can be used

    def add_sample(self, latency_s: float) -> None:
        """Record one measured latency (seconds). Negative or non-finite samples are ignored."""
        if not math.isfinite(latency_s) or latency_s < 0:
            return
        self.samples_seen += 1
        if self._fixed:
            return
        if self.samples_seen <= self._warmup:
            if not self._window:  # no usable sample yet: a cold-start sample beats `fixed_ticks` (a 1-tick guess)
                self._set(float(latency_s) * self.fps + self._margin)
            return
        window, ordered = self._window, self._sorted
        if len(window) == window.maxlen:
            del ordered[bisect.bisect_left(ordered, window[0])]
        x = float(latency_s)
        window.append(x)
        bisect.insort(ordered, x)
        self._set(sorted_quantile(ordered, self._q) * self.fps + self._margin)

    @property
    def delay_ticks(self) -> float:
        """d̂ in ticks (fractional)."""
        return self._ticks

    @property
    def delay_s(self) -> float:
        return self._ticks / self.fps

    @property
    def usable_samples(self) -> int:
        return len(self._window)
