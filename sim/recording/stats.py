"""Feature statistics in LeRobot's layout: min, max, mean, std, count and the q01…q99 quantiles.

Vectors get per-dimension stats; images get per-channel stats of values in [0, 1] shaped (3, 1, 1),
as LeRobot stores them. Episode stats are aggregated the way LeRobot does: count-weighted means,
pooled variance, min of mins, max of maxes, count-weighted quantiles.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_KEYS = tuple(f"q{int(q * 100):02d}" for q in QUANTILES)


def vector_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """Stats over axis 0 of [N, D] (or [N]) values."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    stats = {"min": x.min(0), "max": x.max(0), "mean": x.mean(0), "std": x.std(0), "count": np.array([x.shape[0]])}
    for key, q in zip(QUANTILE_KEYS, np.quantile(x, QUANTILES, axis=0), strict=True):
        stats[key] = q
    return stats


def image_stats(frames: np.ndarray, max_frames: int = 100) -> dict[str, np.ndarray]:
    """Per-channel stats of [T, H, W, C] uint8 frames (an even sample of at most `max_frames`), in [0, 1]."""
    frames = np.asarray(frames)
    idx = np.linspace(0, len(frames) - 1, min(len(frames), max_frames)).round().astype(int)
    pixels = frames[idx].reshape(-1, frames.shape[-1]).astype(np.float64) / 255.0
    stats = {k: v.reshape(-1, 1, 1) for k, v in vector_stats(pixels).items() if k != "count"}
    stats["count"] = np.array([len(idx)])
    return stats


def aggregate(stats: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One feature's stats over several episodes."""
    counts = np.array([float(s["count"][0]) for s in stats])
    w = counts / counts.sum()

    def weighted(key: str) -> np.ndarray:
        return sum(wi * np.asarray(s[key], np.float64) for wi, s in zip(w, stats, strict=True))

    mean = weighted("mean")
    var = sum(wi * (np.asarray(s["std"], np.float64) ** 2 + (np.asarray(s["mean"]) - mean) ** 2)
              for wi, s in zip(w, stats, strict=True))
    out = {
        "min": np.min([s["min"] for s in stats], axis=0),
        "max": np.max([s["max"] for s in stats], axis=0),
        "mean": mean,
        "std": np.sqrt(var),
        "count": np.array([int(counts.sum())]),
    }
    for key in QUANTILE_KEYS:
        if all(key in s for s in stats):
            out[key] = weighted(key)
    return out


def to_jsonable(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, list]]:
    return {feature: {k: np.asarray(v).tolist() for k, v in s.items()} for feature, s in stats.items()}
