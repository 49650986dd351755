"""ExpertBackend: the simulator's scripted expert served like a VLA (one backend for every sim task).

The task is read from `environment_state` (its one-hot), the cube and zone from the instruction
text, and the plan starts from `PolicyInput.state` — the rolled-forward state when the client
sent one, so async clients see exactly the effect a VLA conditioned on that state would have.
Latency like a large model's is added by the server (`injected_latency`), not here.
Options (BackendConfig.options): chunk_length, fps, cameras (names of sim cameras the policy
declares it needs, default none), image_size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from policy_server.backend import BackendError, PolicyBackend, PolicyInput
from sim import so101
from sim.experts import ExpertPolicy, policy_spec
from vla_async.config import BackendConfig
from vla_async.specs import PolicySpec, SpecError

_KNOWN_OPTIONS = {"chunk_length", "fps", "cameras", "image_size"}


class ExpertBackend(PolicyBackend):
    def __init__(self, config: BackendConfig):
        opts = dict(config.options)
        unknown = sorted(set(opts) - _KNOWN_OPTIONS)
        if unknown:
            raise BackendError(f"expert: unknown options {unknown}; allowed: {sorted(_KNOWN_OPTIONS)}")
        chunk_length = int(opts.get("chunk_length", config.chunk_length))
        fps = float(opts.get("fps", 30.0))
        try:
            robot = so101.robot_spec(fps, tuple(opts.get("cameras", ())), tuple(opts.get("image_size", (224, 224))))
            self._spec = policy_spec(chunk_length, fps, robot)
            if robot.cameras:
                self._spec = PolicySpec(**{**self._spec.__dict__, "cameras": robot.cameras})
        except (SpecError, ValueError) as exc:
            raise BackendError(f"expert: {exc}") from exc
        self._expert = ExpertPolicy(chunk_length, fps)

    @property
    def spec(self) -> PolicySpec:
        return self._spec

    def warmup(self) -> None:
        from sim.tasks.layout import ENV_STATE_DIM, TASK_ONE_HOT

        env = np.zeros(ENV_STATE_DIM, np.float32)
        env[TASK_ONE_HOT.start] = 1.0
        self.infer([PolicyInput(state=np.zeros(self._spec.state_dim, np.float32), environment_state=env)])

    def infer(self, batch: Sequence[PolicyInput]) -> list[np.ndarray]:
        out = []
        for item in batch:
            if item.environment_state is None:
                raise BackendError("expert: needs environment_state (the sim's privileged state); the robot sent none")
            env = np.asarray(item.environment_state, np.float32).reshape(-1)
            if env.shape != (self._spec.environment_state_dim,):
                raise BackendError(
                    f"expert: environment_state must have {self._spec.environment_state_dim} values, got {env.shape}"
                )
            try:
                chunk = self._expert.plan(np.asarray(item.state, np.float32), env, item.task, item.exec_offset_s)
            except ValueError as exc:
                raise BackendError(f"expert: {exc}") from exc
            out.append(chunk)
        return out
