"""LeRobot backend: a LeRobot policy checkpoint directory with its saved pre/post-processors.

Loaded fully offline: HF_HUB_OFFLINE is set, and config fields that would fetch weights at
construction are patched first (`pretrained_backbone_weights` → None: the checkpoint's safetensors
hold the trained backbone anyway; `load_vlm_weights` → False for VLM policies). Processors run once
per chunk on the whole batch. ACT-like policies use `predict_action_chunk`; Diffusion goes through
`diffusion.generate_actions` with a per-robot observation history (its `predict_action_chunk`
reads the policy's single shared queue, which cannot serve several robots).

Names: LeRobot checkpoints do not store joint names; they come from the model card sidecar
`<dir>/policy.spec.json` or `backend.options.state_names` / `action_names`. Cameras map policy
image features (`observation.images.<key>`) to robot cameras by the short name or by
`backend.options.camera_map` ({policy_key: robot_camera}); a mismatch is a clear error.

Export (`vla-async export-onnx --backend lerobot`): `exportable_module` wraps an ACT checkpoint's
saved preprocessor, policy and postprocessor in one traceable module; Diffusion is refused.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from policy_server.backend import BackendError, PolicyBackend, PolicyInput
from policy_server.model_io import (
    ModelCard,
    require_file,
    resolve_key_map,
    sidecar_path,
    split_actions,
    standard_inputs,
)
from vla_async.config import BackendConfig
from vla_async.extras import install_hint
from vla_async.specs import CameraSpec, PolicySpec

STATE = "observation.state"
ENV = "observation.environment_state"
IMAGE_PREFIX = "observation.images."


def _patch_offline(cfg: Any) -> None:
    """Fields that make LeRobot download something while building the model."""
    if getattr(cfg, "pretrained_backbone_weights", None) is not None:
        cfg.pretrained_backbone_weights = None
    if getattr(cfg, "load_vlm_weights", False):
        cfg.load_vlm_weights = False


def load_lerobot(path: Path, device: str = "cpu") -> tuple[Any, Any, Any, Any]:
    """(config, policy, preprocessor, postprocessor) from a local checkpoint dir, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.policies.factory import get_policy_class, make_pre_post_processors
    except ImportError as exc:
        raise BackendError(f"backend 'lerobot' needs lerobot: {install_hint('lerobot')} ({exc})") from exc
    for name in ("config.json", "model.safetensors", "policy_preprocessor.json", "policy_postprocessor.json"):
        if not (path / name).is_file():
            raise BackendError(f"LeRobot checkpoint {path} lacks {name} (save the policy and its processors there)")
    try:
        cfg = PreTrainedConfig.from_pretrained(str(path), local_files_only=True)
        _patch_offline(cfg)
        cfg.device = device
        policy = get_policy_class(cfg.type).from_pretrained(str(path), config=cfg, local_files_only=True)
        overrides = {"device_processor": {"device": device}}
        pre, post = make_pre_post_processors(cfg, pretrained_path=str(path), preprocessor_overrides=overrides,
                                             postprocessor_overrides={"device_processor": {"device": "cpu"}})
    except BackendError:
        raise
    except Exception as exc:
        raise BackendError(f"could not load LeRobot checkpoint {path}: {type(exc).__name__}: {exc}") from exc
    policy.eval()
    return cfg, policy, pre, post


def spec_from_config(cfg: Any, path: Path, options: dict[str, Any]) -> tuple[PolicySpec, dict[str, str]]:
    """The PolicySpec served, and the map policy image key -> robot camera name."""
    card = None
    if sidecar_path(path).is_file():
        card = ModelCard.from_json(sidecar_path(path).read_text(), origin=str(sidecar_path(path)))
    features = cfg.input_features or {}
    state_dim = int(features[STATE].shape[0]) if STATE in features else 0
    action_dim = int(cfg.output_features["action"].shape[0])
    state_names = tuple(options.get("state_names") or (card.spec.state_names if card else ()))
    action_names = tuple(options.get("action_names") or (card.spec.action_names if card else ()))
    if len(state_names) != state_dim or len(action_names) != action_dim:
        raise BackendError(
            f"LeRobot policy in {path} has state dim {state_dim} and action dim {action_dim}; give as many "
            f"names in {sidecar_path(path).name} or backend.options.state_names/action_names "
            f"(have {len(state_names)} state and {len(action_names)} action names)")
    image_keys = [k for k in features if k.startswith(IMAGE_PREFIX)]
    robot_cams = list(options.get("robot_cameras") or [k[len(IMAGE_PREFIX):] for k in image_keys])
    cam_map = resolve_key_map(image_keys, robot_cams, options.get("camera_map"), what="camera")
    cameras = tuple(CameraSpec(cam_map[k], int(features[k].shape[1]), int(features[k].shape[2]),
                               int(features[k].shape[0])) for k in image_keys)
    env_dim = int(features[ENV].shape[0]) if ENV in features else 0
    chunk = int(getattr(cfg, "n_action_steps", 0) if cfg.type == "diffusion" else
                getattr(cfg, "chunk_size", 0) or getattr(cfg, "n_action_steps", 1))
    spec = PolicySpec(name=f"lerobot-{cfg.type}", state_names=state_names, action_names=action_names,
                      chunk_length=chunk, cameras=cameras, environment_state_dim=env_dim,
                      fps=card.spec.fps if card else None, extra={"lerobot_type": cfg.type})
    return spec, cam_map


class LeRobotBackend(PolicyBackend):
    supports_batching = True

    def __init__(self, config: BackendConfig):
        import torch

        self.torch = torch
        path = require_file(config.path, "lerobot")
        self.cfg, self.policy, self.pre, self.post = load_lerobot(path, config.device)
        self._spec, self.cam_map = spec_from_config(self.cfg, path, dict(config.options))
        self.is_diffusion = self.cfg.type == "diffusion"
        self.n_obs_steps = int(getattr(self.cfg, "n_obs_steps", 1))
        self._history: dict[str, deque[dict[str, Any]]] = {}

    @property
    def spec(self) -> PolicySpec:
        return self._spec

    def warmup(self) -> None:
        zero = PolicyInput(state=np.zeros(self._spec.state_dim, np.float32),
                           images={c.name: np.zeros(c.shape, np.uint8) for c in self._spec.cameras},
                           environment_state=np.zeros(self._spec.environment_state_dim, np.float32)
                           if self._spec.environment_state_dim else None, session_id="__warmup__")
        self.infer([zero])
        self._history.pop("__warmup__", None)

    def _raw_batch(self, batch: Sequence[PolicyInput]) -> dict[str, Any]:
        torch = self.torch
        out: dict[str, Any] = {STATE: torch.from_numpy(np.stack([np.asarray(p.state, np.float32) for p in batch]))}
        for key, cam in self.cam_map.items():
            try:
                hwc = np.stack([np.asarray(p.images[cam]) for p in batch])
            except KeyError as exc:
                raise BackendError(f"policy input {key!r} needs camera {cam!r}, which the robot did not send") from exc
            out[key] = torch.from_numpy(hwc).permute(0, 3, 1, 2).float().div_(255.0)
        if self._spec.environment_state_dim:
            if any(p.environment_state is None for p in batch):
                raise BackendError(f"policy input {ENV!r} needs environment_state, which the robot did not send")
            out[ENV] = torch.from_numpy(np.stack([np.asarray(p.environment_state, np.float32) for p in batch]))
        out["task"] = [p.task for p in batch]
        return out

    def infer(self, batch: Sequence[PolicyInput]) -> list[np.ndarray]:
        torch = self.torch
        try:
            with torch.inference_mode():
                obs = self.pre(self._raw_batch(batch))  # processors once per chunk, for the whole batch
                actions = self._diffusion(obs, batch) if self.is_diffusion else self.policy.predict_action_chunk(obs)
                actions = self.post(actions)
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"LeRobot policy failed: {type(exc).__name__}: {exc}") from exc
        return split_actions(actions.float().cpu().numpy(), len(batch), self._spec)

    def _diffusion(self, obs: dict[str, Any], batch: Sequence[PolicyInput]) -> Any:
        """Stack each robot's last n_obs_steps observations (the first one repeated at the start)."""
        torch = self.torch
        keys = [STATE] + ([ENV] if ENV in obs else [])
        image_keys = list(self.cam_map)
        rows = []
        for i, p in enumerate(batch):
            now = {k: obs[k][i] for k in keys}
            if image_keys:
                now["observation.images"] = torch.stack([obs[k][i] for k in image_keys], dim=0)
            hist = self._history.setdefault(p.session_id, deque(maxlen=self.n_obs_steps))
            while len(hist) < self.n_obs_steps - 1:
                hist.append(now)
            hist.append(now)
            rows.append({k: torch.stack([h[k] for h in hist], dim=0) for k in now})
        stacked = {k: torch.stack([r[k] for r in rows], dim=0) for k in rows[0]}
        return self.policy.diffusion.generate_actions(stacked)


EXPORTABLE_TYPES = ("act",)


def exportable_module(path: Path) -> tuple[Any, ModelCard]:
    """For `vla-async export-onnx --backend lerobot`: the checkpoint's own preprocessor, policy and
    postprocessor in one module `forward(state, *images[, env_state]) -> [B, H, A]` in robot units.

    Nothing is re-implemented: forward runs the loaded pipelines (normaliser stats from the saved
    processor state) and `predict_action_chunk`, exactly as LeRobotBackend.infer does, so tracing
    bakes the same arithmetic into the graph. Inputs follow `standard_inputs` of the served spec
    (cameras named by the robot camera, in the policy's image-feature order).
    """
    import torch

    path = require_file(str(path), "lerobot")
    if not path.is_dir():
        raise BackendError(f"LeRobot checkpoint {path} must be a directory (config.json, model.safetensors, "
                           "policy_preprocessor.json, policy_postprocessor.json)")
    cfg, policy, pre, post = load_lerobot(path, "cpu")
    if cfg.type == "diffusion":
        raise BackendError(
            f"cannot export the LeRobot diffusion policy in {path} to ONNX: each chunk starts from fresh "
            f"random noise and runs {getattr(cfg, 'num_inference_steps', None) or 'N'} denoising steps over a "
            f"{getattr(cfg, 'n_obs_steps', '?')}-step observation history, so no fixed graph reproduces its "
            "output and there is nothing deterministic to check the export against. Serve the checkpoint "
            "directly instead (backend.name: lerobot, backend.path: the checkpoint dir)")
    if cfg.type not in EXPORTABLE_TYPES:
        raise BackendError(f"export-onnx supports LeRobot policy types {list(EXPORTABLE_TYPES)}; {path} holds "
                           f"{cfg.type!r}. Serve it directly with backend.name: lerobot")
    spec, cam_map = spec_from_config(cfg, path, {})
    image_keys = list(cam_map)  # policy keys, in the order of spec.cameras
    has_env = bool(spec.environment_state_dim)

    class LeRobotExport(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.policy = policy  # a submodule: its weights become the graph's initializers

        def forward(self, state: Any, *rest: Any) -> Any:
            obs: dict[str, Any] = {STATE: state}
            obs.update(zip(image_keys, rest[:len(image_keys)], strict=True))
            if has_env:
                obs[ENV] = rest[len(image_keys)]
            return post(self.policy.predict_action_chunk(pre(obs))).float()

    card = ModelCard(spec=spec, inputs=standard_inputs(spec), model={"source": "lerobot", "lerobot_type": cfg.type})
    return LeRobotExport().eval(), card
