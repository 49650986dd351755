"""DAgger-style data aggregation (Ross et al. 2011): a learned policy drives, the scripted expert labels.

With `vla-async record --policy P`, a trained policy (`.onnx` or a `policy.pt`) chooses what the arm executes:
every `replan_every` ticks it plans a chunk from the frame it sees (images, instruction, and the last command
or the measured state), used `delay_ticks` later (inference latency); with probability `beta` per request the
expert's chunk is executed instead, at once (β = 1: expert demonstrations; β = 0: the policy alone). The recording then holds the states *the policy* visits,
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
    beta: float = 0.0  # probability per request that the expert's chunk is executed instead of the policy's
    # the state the policy is given: the last command sent (what `vlash_rail`'s `last_command` rollforward
    # sends; the measured state before the first command) or the measured state (`sync`, `rail`)
    condition: str = "command"
    # ticks from a policy request to its chunk's use (the inference latency, e.g. 6 = 200 ms at 30 fps): the
    # previous chunk runs meanwhile, the new one is used from the row for the current tick (aligned, as
    # the rail fuser places it); the arm holds its start until the first chunk arrives. The expert's
    # chunks (β) are used at once.
    delay_ticks: int = 0
    # `lag_rail`'s placement: a policy chunk's row 0 is for `lag_ticks` before its capture tick (the measured
    # state is where the plan was about that long ago), so the row for tick t is t - capture + lag_ticks.
    # Requires condition "measured", as `strategy.state_lag_ticks` requires rollforward none.
    lag_ticks: int = 0

    def __post_init__(self) -> None:
        if self.condition not in ("command", "measured"):
            raise ValueError(f"--policy-state must be 'command' or 'measured', got {self.condition!r}")
        if self.delay_ticks < 0:
            raise ValueError(f"--policy-delay-ticks must be >= 0, got {self.delay_ticks}")
        if self.lag_ticks < 0:
            raise ValueError(f"--policy-lag-ticks must be >= 0, got {self.lag_ticks}")
        if self.lag_ticks and self.condition != "measured":
            raise ValueError("--policy-lag-ticks needs --policy-state measured (as lag_rail conditions on it)")
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"--beta must be in [0, 1], got {self.beta}")
        if not Path(self.policy).is_file():
            raise ValueError(f"--policy {self.policy!r} is not a file")

    @property
    def backend_name(self) -> str:
        return "onnx" if self.policy.endswith(".onnx") else "torch"


class PolicyDriver:
    """Chooses each executed action: from the learned policy's chunks, or with probability β the expert's."""

    def __init__(self, config: DaggerConfig, seed: int, fps: float, cameras: Sequence[str], image_size: int,
                 replan_every: int = 1):
        """Raises ValueError (one line) when the policy cannot be loaded or does not fit the recording."""
        from sim.eval.policy_source import BackendSource
        from sim.experts import ExpertPolicy
        from vla_async.config import BackendConfig, ConfigError

        backend = BackendConfig(name=config.backend_name, path=config.policy, options={"threads": 1})
        try:
            self._source = BackendSource(backend, None, None, fps)
        except ConfigError as exc:
            raise ValueError(f"--policy {config.policy}: {exc}") from None
        source = self._source
        missing = sorted(set(source.cameras) - set(cameras))
        problem = None
        if missing or (source.cameras and source.image_size != (image_size, image_size)):
            problem = (f"--policy needs camera(s) {list(source.cameras)} at {source.image_size[0]} px; "
                       f"recording {list(cameras)} at {image_size} px")
        elif replan_every > source.chunk_length:
            problem = f"--replan-every must be <= the policy's chunk length {source.chunk_length}, got {replan_every}"
        if problem:
            source.close()
            raise ValueError(problem)
        self.config = config
        self.replan_every = replan_every
        self._expert = ExpertPolicy(source.chunk_length, fps)
        self._rng = np.random.default_rng([seed, 0xDA66E7])
        self._pending: list[tuple[int, int, np.ndarray]] = []  # (first tick of use, tick of row 0, chunk)
        self._active: tuple[int, int, np.ndarray] | None = None
        self.requests = self.expert_requests = 0

    @property
    def expert_fraction(self) -> float:
        """Share of the requests the expert answered."""
        return self.expert_requests / self.requests if self.requests else 0.0

    def action(self, tick: int, obs, instruction: str, last_command: np.ndarray | None) -> np.ndarray:
        """The command for this tick: every `replan_every` ticks a request (the expert's chunk with probability
        β, at once; else the policy's, usable `delay_ticks` later), and the row of the newest usable chunk for
        this tick; before the first one, the arm holds where it is."""
        if tick % self.replan_every == 0:
            self.requests += 1
            if self.config.beta > 0 and self._rng.random() < self.config.beta:
                self.expert_requests += 1
                self._pending = [(tick, tick, self._expert.plan(obs.state, obs.environment_state, instruction))]
            else:
                self._pending.append((tick + self.config.delay_ticks, tick - self.config.lag_ticks,
                                      self._plan(obs, instruction, last_command)))
        while self._pending and self._pending[0][0] <= tick:
            self._active = self._pending.pop(0)
        if self._active is None:
            return np.asarray(obs.state if last_command is None else last_command, np.float32)
        _, origin, chunk = self._active
        return chunk[min(tick - origin, len(chunk) - 1)]

    def _plan(self, obs, instruction: str, last_command: np.ndarray | None) -> np.ndarray:
        from vla_async.policy_input import PolicyInput

        images = {c: obs.images[c] for c in self._source.cameras}
        state = obs.state if self.config.condition == "measured" or last_command is None else last_command
        planned = self._source.plan(PolicyInput(state=np.asarray(state, np.float32), images=images, task=instruction))
        return np.asarray(planned, np.float32)

    def close(self) -> None:
        self._source.close()
