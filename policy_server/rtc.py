"""Real-time chunking's soft mask and options (Black, Galliker, Levine, arXiv 2506.07339).

The weight of row i of the new chunk toward the committed prefix: 1 on the `frozen` rows the robot executes
before the chunk can arrive; over the rest of the overlap (the client's plan, `rows` long) the paper's
exponential decay `W_i = c_i (e^{c_i} − 1)/(e − 1)`, `c_i = (rows − i)/(rows − frozen + 1)` (their H − s is the
overlap length, here the prefix's row count); 0 after it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

SCHEDULES = ("exp", "linear", "ones", "frozen")
MODES = ("trained", "inpaint", "none")


def rtc_row_weights(horizon: int, frozen: int, rows: int, schedule: str = "exp") -> np.ndarray:
    """Guidance weight per chunk row [horizon] (see the module docstring); `schedule` shapes the overlap:
    exp (the paper's), linear (c_i), ones (the whole overlap weighted 1), frozen (committed rows only)."""
    rows = max(0, min(rows, horizon))
    frozen = max(0, min(frozen, rows))
    w = np.zeros(horizon, np.float32)
    w[:frozen] = 1.0
    if schedule == "frozen" or rows == frozen:
        return w
    i = np.arange(frozen, rows)
    c = (rows - i) / (rows - frozen + 1)
    overlap = {"exp": c * np.expm1(c) / (math.e - 1), "linear": c, "ones": np.ones_like(c)}.get(schedule)
    if overlap is None:
        raise ValueError(f"RTC schedule must be one of {SCHEDULES}, got {schedule!r}")
    w[frozen:rows] = overlap
    return w


@dataclass(frozen=True)
class RtcOptions:
    """How the torch backend uses a committed action prefix (backend.options: action_prefix, rtc_guidance_weight,
    rtc_schedule)."""

    mode: str | None  # "trained" | "inpaint" | None (the policy takes no prefix)
    guidance_weight: float = math.inf  # β; inf = inpainting (the committed rows are then exact)
    schedule: str = "exp"
    guide_from: float = 0.0  # flow time τ from which the Euler steps are guided (0: all of them)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], trained: bool) -> RtcOptions:
        """From backend options; a prefix-conditioned model defaults to "trained", any other to none."""
        mode = str(options.get("action_prefix", "trained" if trained else "none"))
        if mode not in MODES:
            raise ValueError(f"backend.options.action_prefix must be one of {MODES}, got {mode!r}")
        if mode == "trained" and not trained:
            raise ValueError("backend.options.action_prefix=trained needs a model trained with prefix conditioning "
                             "(its card lists action_prefix and prefix_mask inputs); use inpaint for guided denoising")
        weight = float(options.get("rtc_guidance_weight", math.inf))
        if not weight >= 0:
            raise ValueError(f"backend.options.rtc_guidance_weight must be >= 0 (inf allowed), got {weight}")
        schedule = str(options.get("rtc_schedule", "exp"))
        if schedule not in SCHEDULES:
            raise ValueError(f"backend.options.rtc_schedule must be one of {SCHEDULES}, got {schedule!r}")
        guide_from = float(options.get("rtc_guidance_from", 0.0))
        if not 0.0 <= guide_from < 1.0:
            raise ValueError(f"backend.options.rtc_guidance_from must be in [0, 1), got {guide_from}")
        return cls(None if mode == "none" else mode, weight, schedule, guide_from)
