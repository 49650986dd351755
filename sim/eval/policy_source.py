"""Where the virtual engine's chunks come from, and what it must render for them.

Without `EvalConfig.backend` the scripted expert runs in process, as before (no cameras). With it,
the named policy backend (onnx, torch, lerobot, expert, ...) is built once per episode and called with
the observation its spec declares: the engine renders the policy's cameras at the policy's image size
(or `EvalConfig.cameras` / `image_size` when set) only at ticks where it sends a request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from vla_async.config import BackendConfig, ConfigError
from vla_async.policy_input import PolicyInput
from vla_async.specs import PolicySpec


class ChunkSource:
    """A policy the engine calls in process: its spec (the information contract) and `plan(PolicyInput)`."""

    cameras: tuple[str, ...] = ()
    image_size: tuple[int, int] = (224, 224)
    chunk_length: int = 50

    @property
    def needs_images(self) -> bool:
        return bool(self.cameras)

    def render(self, robot: Any) -> dict[str, np.ndarray]:
        """The camera images this source needs, rendered now (none for the expert: no rendering cost)."""
        return robot.get_observation().images if self.needs_images else {}

    @property
    def spec(self) -> PolicySpec:
        raise NotImplementedError

    def plan(self, inp: PolicyInput) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the model."""


class ExpertSource(ChunkSource):
    """The scripted expert; `exec_offset` declares it was made for exec_offset_s (see sim.experts.policy_spec);
    `expert_lag_s` > 0 plans from a lag-compensated estimate of the arm (sim.experts.ExpertPolicy)."""

    def __init__(self, chunk_length: int, fps: float, exec_offset: bool = False, expert_lag_s: float = 0.0):
        from sim.experts import ExpertPolicy

        self.chunk_length = chunk_length
        self._expert = ExpertPolicy(chunk_length=chunk_length, fps=fps, exec_offset=exec_offset,
                                    lag_compensation_s=expert_lag_s)
        self._spec = self._expert.spec()

    @property
    def spec(self) -> PolicySpec:
        return self._spec

    def plan(self, inp: PolicyInput) -> np.ndarray:
        return self._expert.plan(inp.state, inp.environment_state, inp.task, inp.exec_offset_s)


class BackendSource(ChunkSource):
    """A policy backend; its spec fixes the chunk length, the cameras and (by default) the image size."""

    def __init__(self, config: BackendConfig, cameras: Sequence[str] | None, image_size: int | None, fps: float):
        from policy_server.backend import BackendError, create_backend

        try:
            self._backend = create_backend(config)
        except BackendError as exc:
            raise ConfigError(f"eval backend {config.name!r}: {exc}") from None
        spec = self._backend.spec
        if spec.fps is not None and abs(spec.fps - fps) > 1e-6:
            raise ConfigError(f"eval backend {config.name!r} was made for {spec.fps:g} fps; the eval runs at {fps:g}")
        declared = {c.name: (c.height, c.width) for c in spec.cameras}
        self.cameras = tuple(declared if cameras is None else cameras)
        missing = sorted(set(declared) - set(self.cameras))
        if missing:
            raise ConfigError(f"eval backend {config.name!r} needs camera(s) {missing}; cameras={list(self.cameras)}")
        sizes = set(declared.values())
        self.image_size = (image_size, image_size) if image_size else (sizes.pop() if sizes else (224, 224))
        self.chunk_length = spec.chunk_length
        self._uses_env = spec.environment_state_dim > 0

    @property
    def spec(self) -> PolicySpec:
        return self._backend.spec

    def plan(self, inp: PolicyInput) -> np.ndarray:
        if not self._uses_env:
            inp = dataclasses.replace(inp, environment_state=None)
        return self._backend.infer([inp])[0]

    def close(self) -> None:
        self._backend.close()


def make_source(backend: BackendConfig | None, *, chunk_length: int, fps: float,
                cameras: Sequence[str] | None = None, image_size: int | None = None,
                exec_offset: bool = False, expert_lag_s: float = 0.0) -> ChunkSource:
    """The scripted expert (`exec_offset`: declared trained for exec_offset_s; `expert_lag_s`: lag-compensated),
    or the configured backend."""
    if backend is None:
        return ExpertSource(chunk_length, fps, exec_offset, expert_lag_s)
    return BackendSource(backend, cameras, image_size, fps)
