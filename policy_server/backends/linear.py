"""LinearBackend: a real, seeded, tiny policy for tests, benchmarks and the round-trip tool.

Each chunk moves from the conditioning state toward `W·state + b + c·image_brightness` along a
linear ramp, so the output depends on the state, on the images and on the task text (hashed
into the offset) — enough to check end to end that the right inputs reached the model.
Options (BackendConfig.options): state_names, action_names, cameras (names or
{name, height, width, channels}), chunk_length, image_size, seed, use_images.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from policy_server.backend import BackendError, PolicyBackend, PolicyInput
from vla_async.config import BackendConfig
from vla_async.reference_specs import REFERENCE_CAMERAS, joint_names
from vla_async.specs import ActionKind, CameraSpec, PolicySpec, SpecError

_KNOWN_OPTIONS = {"state_names", "action_names", "cameras", "chunk_length", "image_size", "seed", "use_images",
                  "environment_state_dim"}


def _cameras(raw: object, image_size: Sequence[int]) -> tuple[CameraSpec, ...]:
    if not isinstance(raw, list | tuple):
        raise BackendError(f"linear: options.cameras must be a list, got {raw!r}")
    out = []
    for cam in raw:
        if isinstance(cam, str):
            out.append(CameraSpec(cam, int(image_size[0]), int(image_size[1]), 3))
        elif isinstance(cam, dict):
            out.append(CameraSpec(**cam))
        else:
            raise BackendError(f"linear: camera entries are names or maps, got {cam!r}")
    return tuple(out)


class LinearBackend(PolicyBackend):
    supports_batching = True

    def __init__(self, config: BackendConfig):
        opts = dict(config.options)
        unknown = sorted(set(opts) - _KNOWN_OPTIONS)
        if unknown:
            raise BackendError(f"linear: unknown options {unknown}; allowed: {sorted(_KNOWN_OPTIONS)}")
        state_names = tuple(opts.get("state_names", joint_names(14)))
        action_names = tuple(opts.get("action_names", state_names))
        try:
            self._spec = PolicySpec(
                name="linear", state_names=state_names, action_names=action_names,
                chunk_length=int(opts.get("chunk_length", config.chunk_length)), action_kind=ActionKind.ABSOLUTE,
                cameras=_cameras(opts.get("cameras", list(REFERENCE_CAMERAS)), opts.get("image_size", (224, 224))),
                environment_state_dim=int(opts.get("environment_state_dim", 0)),
            )
        except SpecError as exc:
            raise BackendError(f"linear: {exc}") from exc
        self._use_images = bool(opts.get("use_images", True))
        rng = np.random.default_rng(int(opts.get("seed", 0)))
        s, a = self._spec.state_dim, self._spec.action_dim
        self._weights = (rng.standard_normal((s, a)) * 0.1 / np.sqrt(s)).astype(np.float32)
        self._bias = (rng.standard_normal(a) * 0.05).astype(np.float32)
        self._image_gain = (rng.standard_normal((max(1, len(self._spec.cameras)), a)) * 0.05).astype(np.float32)
        self._ramp = (np.arange(1, self._spec.chunk_length + 1, dtype=np.float32) / self._spec.chunk_length)
        self._ramp_col = self._ramp[:, None]  # [H, 1]
        self._task_offsets: dict[str, float] = {}

    @property
    def spec(self) -> PolicySpec:
        return self._spec

    def warmup(self) -> None:
        dummy = PolicyInput(state=np.zeros(self._spec.state_dim, np.float32),
                            images={c.name: np.zeros(c.shape, np.uint8) for c in self._spec.cameras})
        self.infer([dummy])

    def infer(self, batch: Sequence[PolicyInput]) -> list[np.ndarray]:
        spec = self._spec
        if len(batch) == 1 and not (self._use_images and spec.cameras) and spec.state_dim >= spec.action_dim:
            return [self._infer_one(batch[0])]  # the common case, without the batch stacking
        states = np.stack([np.asarray(x.state, np.float32).reshape(spec.state_dim) for x in batch])  # [B, S]
        goal = states @ self._weights + self._bias  # [B, A]
        if self._use_images and spec.cameras:
            brightness = np.array([[float(x.images[c.name].mean()) / 255.0 - 0.5 for c in spec.cameras]
                                   for x in batch], np.float32)  # [B, C]
            goal += brightness @ self._image_gain
        goal += np.array([self._task_offset(x.task) for x in batch], np.float32)[:, None]
        start = states[:, : spec.action_dim] if spec.state_dim >= spec.action_dim else np.zeros_like(goal)
        chunks = start[:, None, :] + self._ramp_col[None] * (goal - start)[:, None, :]  # [B, H, A] float32
        return list(chunks)

    def _infer_one(self, x: PolicyInput) -> np.ndarray:
        """`infer([x])[0]` for a state-only policy (same arithmetic, no batch axis)."""
        state = np.asarray(x.state, np.float32).reshape(self._spec.state_dim)
        goal = state @ self._weights + self._bias
        goal += np.float32(self._task_offset(x.task))
        start = state[: self._spec.action_dim]
        return start + self._ramp_col * (goal - start)

    def _task_offset(self, task: str) -> float:
        """The task text's offset (crc32 of the text); cached, since a robot repeats its task."""
        offset = self._task_offsets.get(task)
        if offset is None:
            offset = (zlib.crc32(task.encode()) % 1000) / 1e4
            if len(self._task_offsets) < 1024:
                self._task_offsets[task] = offset
        return offset
