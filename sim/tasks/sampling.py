"""Seeded sampling of reachable places on and above the table."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np


def polar_point(rng: np.random.Generator, r: tuple[float, float], pan: tuple[float, float], z: float) -> np.ndarray:
    radius, angle = rng.uniform(*r), rng.uniform(*pan)
    return np.array([radius * math.cos(angle), radius * math.sin(angle), z])


def sample_apart(
    rng: np.random.Generator,
    draw: Callable[[], np.ndarray],
    others: Sequence[np.ndarray],
    min_distance: float,
    accept: Callable[[np.ndarray], bool] = lambda _p: True,
    tries: int = 1000,
) -> np.ndarray:
    """Draw until a point is accepted and at least `min_distance` (xy) from every other point."""
    for _ in range(tries):
        p = draw()
        if accept(p) and all(np.linalg.norm(p[:2] - o[:2]) >= min_distance for o in others):
            return p
    raise RuntimeError(f"no acceptable point after {tries} draws (min distance {min_distance} m)")
