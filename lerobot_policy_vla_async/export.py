"""Write a LeRobot pretrained-policy directory for a vla-async ONNX model (type `vla_async`).

The directory holds what LeRobot's PolicyServer loads: config.json (LeRobot's format, with the model card's
features), the model, and the pre/post-processor pipelines (rename + device, the steps the server overrides;
normalisation is inside our model).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lerobot.configs.types import FeatureType, PolicyFeature
from lerobot.processor import DeviceProcessorStep, PolicyProcessorPipeline, RenameObservationsProcessorStep
from lerobot.processor.converters import policy_action_to_transition, transition_to_policy_action
from lerobot.utils.constants import POLICY_POSTPROCESSOR_DEFAULT_NAME, POLICY_PREPROCESSOR_DEFAULT_NAME

from lerobot_policy_vla_async.configuration_vla_async import MODEL_FILE, VlaAsyncConfig


def export_policy(model: str | Path, out: str | Path, native_to_policy_scale: Sequence[float],
                  injected_latency_ms: float = 0.0, device: str = "cpu") -> Path:
    from policy_server.model_io import read_card

    model, out = Path(model), Path(out)
    spec = read_card(model).spec
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model, out / MODEL_FILE)
    n = len(spec.state_names)
    config = VlaAsyncConfig(
        device=device, push_to_hub=False, chunk_size=spec.chunk_length, n_action_steps=spec.chunk_length,
        native_to_policy_scale=[float(s) for s in native_to_policy_scale], injected_latency_ms=injected_latency_ms,
        input_features={"observation.state": PolicyFeature(FeatureType.STATE, (n,)),
                        **{f"observation.images.{c.name}": PolicyFeature(FeatureType.VISUAL, (c.channels, c.height, c.width))
                           for c in spec.cameras}},
        output_features={"action": PolicyFeature(FeatureType.ACTION, (spec.action_dim,))},
    )
    config.validate_features()
    config._save_pretrained(out)
    for pipeline in _processors(device):
        pipeline.save_pretrained(out)
    return out


def _processors(device: str) -> tuple[Any, Any]:
    pre = PolicyProcessorPipeline[dict[str, Any], dict[str, Any]](
        steps=[RenameObservationsProcessorStep(rename_map={}), DeviceProcessorStep(device=device)],
        name=POLICY_PREPROCESSOR_DEFAULT_NAME)
    post = PolicyProcessorPipeline(
        steps=[DeviceProcessorStep(device="cpu")], name=POLICY_POSTPROCESSOR_DEFAULT_NAME,
        to_transition=policy_action_to_transition, to_output=transition_to_policy_action)
    return pre, post
