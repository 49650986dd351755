"""DAgger-style data aggregation (Ross et al. 2011): a learned policy drives, the scripted expert labels.

With `vla-async record --policy P`, a trained policy (`.onnx` or a `policy.pt`) chooses what the arm executes:
every `replan_every` ticks it plans a chunk from the frame it sees (images, measured state, instruction),
and with probability `beta` per chunk the expert's chunk is executed instead (β = 1: plain expert
demonstrations; β = 0: the policy alone). The recording then holds the states *the policy* visits,
including its mistakes (closing the gripper beside the cube, drifting away), which expert demonstrations
never show. The stateless expert only labels them: training with `--labels expert` plans the label chunk
from each frame's state and environment state (privileged, a label source only; never a policy input,
never a judge). The dataset's `action` column holds the command the arm executed (policy's or expert's), so
`--vlash-state commanded` conditions on what the robot was really commanded; `--labels recorded` would
imitate the policy itself and is wrong for such data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class DaggerConfig:
    policy: str  # .onnx file or policy.pt (torch) made by `vla-async train` / `export-onnx`
    beta: float = 0.0  # probability per chunk that the expert's chunk is executed instead of the policy's

    def __post_init__(self) -> None:
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"--beta must be in [0, 1], got {self.beta}")
        if not Path(self.policy).is_file():
            raise ValueError(f"--policy {self.policy!r} is not a file")

    @property
    def backend_name(self) -> str:
        return "onnx" if self.policy.endswith(".onnx") else "torch"


class PolicyDriver:
    """Chooses each executed chunk: the learned policy's, or with probability β the expert's."""

    def __init__(self, config: DaggerConfig, seed: int, fps: float, cameras: Sequence[str], image_size: int):
        from sim.eval.policy_source import BackendSource
        from vla_async.config import BackendConfig

        backend = BackendConfig(name=config.backend_name, path=config.policy, options={"threads": 1})
        self._source = BackendSource(backend, None, None, fps)
        missing = sorted(set(self._source.cameras) - set(cameras))
        if missing or (self._source.cameras and self._source.image_size != (image_size, image_size)):
            self._source.close()
            raise ValueError(f"--policy needs camera(s) {list(self._source.cameras)} at "
                             f"{self._source.image_size[0]} px; recording {list(cameras)} at {image_size} px")
        self.beta = config.beta
        self._rng = np.random.default_rng([seed, 0xDA66E7])

    def chunk(self, obs, instruction: str, expert_chunk: np.ndarray) -> tuple[np.ndarray, bool]:
        """(chunk to execute, whether it is the expert's)."""
        if self.beta > 0 and self._rng.random() < self.beta:
            return expert_chunk, True
        from vla_async.policy_input import PolicyInput

        images = {c: obs.images[c] for c in self._source.cameras}
        planned = self._source.plan(PolicyInput(state=obs.state, images=images, task=instruction))
        return np.asarray(planned, np.float32), False

    def close(self) -> None:
        self._source.close()
