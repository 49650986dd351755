"""The config of the `vla_async` LeRobot policy: which model, the state's units, the injected latency."""

from __future__ import annotations

from dataclasses import dataclass, field

from lerobot.configs.policies import PreTrainedConfig
from lerobot.optim.optimizers import AdamConfig

MODEL_FILE = "policy.onnx"  # next to config.json in the pretrained directory


@PreTrainedConfig.register_subclass("vla_async")
@dataclass
class VlaAsyncConfig(PreTrainedConfig):
    chunk_size: int = 50
    n_action_steps: int = 50
    # policy units = LeRobot units × scale, per joint in the features' order (SO-101 in degrees: π/180 for the
    # arm joints, 1/100 for the 0…100 gripper); actions are divided by it on the way back
    native_to_policy_scale: list[float] = field(default_factory=list)
    # emulates a slow model: a constant delay after each inference (the same sampler our server's
    # --injected_latency uses), in ms
    injected_latency_ms: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.injected_latency_ms < 0:
            raise ValueError(f"injected_latency_ms must be >= 0, got {self.injected_latency_ms}")

    @property
    def observation_delta_indices(self) -> None:
        return None

    @property
    def action_delta_indices(self) -> list[int]:
        return list(range(self.chunk_size))

    @property
    def reward_delta_indices(self) -> None:
        return None

    def get_optimizer_preset(self) -> AdamConfig:
        return AdamConfig(lr=0.0)  # inference only: the model is trained with `vla-async train`

    def get_scheduler_preset(self) -> None:
        return None

    def validate_features(self) -> None:
        state = self.robot_state_feature
        if state is None or self.action_feature is None:
            raise ValueError("a vla_async policy needs observation.state and action features")
        if len(self.native_to_policy_scale) != state.shape[0]:
            raise ValueError(f"native_to_policy_scale has {len(self.native_to_policy_scale)} values for a "
                             f"{state.shape[0]}-joint state")
