"""`VlaAsyncPolicy`: a vla-async model (ONNX + model card) behind LeRobot's `PreTrainedPolicy` interface.

LeRobot's async PolicyServer hands it `observation.state` [1, n] in the robot's LeRobot units,
`observation.images.<camera>` [1, 3, H, W] in [0, 1] (resized by LeRobot to the card's size) and the
`task` string; it returns the chunk [1, H, n] in LeRobot units. Inference is this project's OnnxBackend,
fed the same `PolicyInput` our policy server builds, so the model sees the same values either way.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lerobot.configs.policies import PreTrainedConfig
from lerobot.policies.pretrained import PreTrainedPolicy

from lerobot_policy_vla_async.configuration_vla_async import MODEL_FILE, VlaAsyncConfig


class VlaAsyncPolicy(PreTrainedPolicy):
    config_class = VlaAsyncConfig
    name = "vla_async"

    def __init__(self, config: VlaAsyncConfig, model_path: str | Path | None = None, **kwargs: Any) -> None:
        super().__init__(config)
        from policy_server.backend import create_backend
        from vla_async.config import BackendConfig

        config.validate_features()
        self.config = config
        path = Path(model_path) if model_path is not None else Path(str(config.pretrained_path)) / MODEL_FILE
        self.backend = create_backend(BackendConfig(name="onnx", path=str(path)))
        self.spec = self.backend.spec
        if self.spec.chunk_length < config.n_action_steps:
            raise ValueError(f"{path}: chunks of {self.spec.chunk_length} actions, config asks {config.n_action_steps}")
        self.scale = np.asarray(config.native_to_policy_scale, dtype=np.float64)
        self.sampler = _latency_sampler(config.injected_latency_ms)
        self._queue: list[torch.Tensor] = []

    @classmethod
    def from_pretrained(cls, pretrained_name_or_path: str | Path, *, config: PreTrainedConfig | None = None,
                        **kwargs: Any) -> VlaAsyncPolicy:
        """A local directory: config.json (LeRobot's format) and the ONNX model next to it."""
        folder = Path(pretrained_name_or_path)
        if not (folder / MODEL_FILE).is_file():
            raise FileNotFoundError(f"{folder}: no {MODEL_FILE} (write one with lerobot_policy_vla_async.export)")
        config = config or PreTrainedConfig.from_pretrained(folder)
        config.pretrained_path = folder
        policy = cls(config, model_path=folder / MODEL_FILE)
        policy.eval()
        return policy

    def policy_input(self, batch: dict[str, Any]) -> Any:
        """LeRobot's batch (first row) → the PolicyInput our server would build from the same observation."""
        from vla_async.policy_input import PolicyInput

        state = batch["observation.state"][0].detach().cpu().double().numpy() * self.scale
        images = {c.name: batch[f"observation.images.{c.name}"][0].detach().cpu().permute(1, 2, 0).numpy()
                  for c in self.spec.cameras}
        task = batch.get("task", "")
        return PolicyInput(state=state.astype(np.float32), images=images,
                           task=task[0] if isinstance(task, list | tuple) else str(task))

    @torch.no_grad()
    def predict_action_chunk(self, batch: dict[str, Any], **kwargs: Any) -> torch.Tensor:
        chunk = self.backend.infer([self.policy_input(batch)])[0]
        if self.sampler is not None:
            time.sleep(max(0.0, float(self.sampler.sample_s())))
        native = np.asarray(chunk[: self.config.n_action_steps], dtype=np.float64) / self.scale
        return torch.from_numpy(native.astype(np.float32)).unsqueeze(0)

    @torch.no_grad()
    def select_action(self, batch: dict[str, Any], **kwargs: Any) -> torch.Tensor:
        if not self._queue:
            self._queue = list(self.predict_action_chunk(batch)[0])
        return self._queue.pop(0).unsqueeze(0)

    def reset(self) -> None:
        self._queue = []

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict | None]:
        raise NotImplementedError("vla_async policies are trained with `vla-async train`, not LeRobot")

    def get_optim_params(self) -> dict:
        return {}


def _latency_sampler(mean_ms: float) -> Any:
    if mean_ms <= 0:
        return None
    from sim.injected_latency import LatencySampler
    from vla_async.config import InjectedLatencyConfig

    return LatencySampler(InjectedLatencyConfig(mean_ms=mean_ms))
