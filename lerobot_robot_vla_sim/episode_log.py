"""The simulated follower's episode log: what the arm was commanded, when, and how the task went.

Written by the robot itself, so two different client stacks driving it (ours and LeRobot's own
RobotClient, `vla-async bench lerobot`) are measured by the same code at the same place: every
`send_action` with its wall time (since the episode's clock started) and sim time, the joint targets
in the robot's units, and the task's status once the world's clock passes the episode's length.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


class EpisodeRecorder:
    def __init__(self, path: str, episode_s: float | None, names: Sequence[str], to_policy_scale: Sequence[float],
                 fps: float) -> None:
        self.path = Path(path)
        self.episode_s = episode_s
        self.names = list(names)
        self.to_policy_scale = [float(s) for s in to_policy_scale]
        self.fps = float(fps)
        self.commands: list[list[float]] = []
        self.reads = 0
        self._t0: float | None = None
        self._written = False
        self._lock = threading.Lock()

    def started(self) -> None:
        """The world's clock started now (wall times are measured from here)."""
        self._t0 = time.perf_counter()

    def read(self) -> None:
        self.reads += 1

    def command(self, sim_s: float, goal: Mapping[str, float]) -> None:
        if self._written or self._t0 is None:
            return
        wall = time.perf_counter() - self._t0
        with self._lock:
            self.commands.append([wall, float(sim_s), *(float(goal.get(n, math.nan)) for n in self.names)])

    def maybe_finish(self, sim_s: float, status: Any) -> None:
        """Write the log the first time the world's clock is past the episode's length."""
        if self.episode_s is not None and sim_s >= self.episode_s and not self._written:
            self.write(sim_s, status, complete=True)

    def write(self, sim_s: float, status: Any, complete: bool) -> None:
        with self._lock:
            if self._written:
                return
            self._written = True
            data = {
                "fps": self.fps, "episode_s": self.episode_s, "complete": complete, "sim_s": float(sim_s),
                "joint_names": self.names, "to_policy_scale": self.to_policy_scale, "reads": self.reads,
                "success": bool(status.success), "progress": float(status.progress),
                "metrics": {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                            for k, v in status.metrics.items()},
                "commands": self.commands,
            }
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.path)  # a reader polling for the file never sees half of it

    @property
    def written(self) -> bool:
        return self._written
