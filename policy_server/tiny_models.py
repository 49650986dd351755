"""Small real torch policies with random weights, for tests and benchmarks (no download).

`TinyPolicy` has the generic input convention of `model_io` (state, one conv encoder per camera,
environment state) and predicts a chunk near the current state. Sizes go from "tiny" (~20k params)
through "flow" (a small denoiser run for 24 steps, like a flow-matching head) to "100m" (~100M
params, for GPU runs). `save_tiny_policy` writes it in any format the backends load: a state dict + factory, a torch.export program, or ONNX; always with its model card.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from policy_server.model_io import ModelCard, standard_inputs, write_card
from vla_async.specs import CameraSpec, PolicySpec

SIZES: dict[str, dict[str, int]] = {
    "tiny": {"hidden": 64, "depth": 2, "conv_channels": 8},
    "small": {"hidden": 512, "depth": 4, "conv_channels": 16},
    "medium": {"hidden": 2048, "depth": 4, "conv_channels": 16},  # ~13M params: compute-bound on CPU
    # flow/diffusion-like: a small denoiser applied for many steps; launch-bound, so batches are cheap
    "flow": {"hidden": 256, "depth": 2, "conv_channels": 8, "denoise_steps": 24},
    "100m": {"hidden": 4096, "depth": 6, "conv_channels": 32},
}
Fault = Literal["nan", "raise_on_large_state"] | None
Format = Literal["state_dict", "exported", "onnx"]
FACTORY = "policy_server.tiny_models:build_tiny_policy"


class TinyPolicy(nn.Module):
    """forward(state, *images, [env]) -> actions [B, H, A]. `fault` builds deliberately bad models."""

    def __init__(self, state_dim: int, action_dim: int, chunk_length: int, cameras: Sequence[Sequence[int]] = (),
                 env_dim: int = 0, hidden: int = 64, depth: int = 2, conv_channels: int = 8, denoise_steps: int = 0,
                 fault: Fault = None):
        super().__init__()
        self.action_dim, self.chunk_length, self.env_dim, self.fault = action_dim, chunk_length, env_dim, fault
        self.residual = state_dim == action_dim
        self.encoders = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(int(c[0]), conv_channels, 5, stride=4), nn.ReLU(),
                nn.Conv2d(conv_channels, conv_channels, 3, stride=2), nn.ReLU(),
                nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            )
            for c in cameras
        )
        layers: list[nn.Module] = [nn.Linear(state_dim + env_dim + conv_channels * len(cameras), hidden), nn.ReLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.ReLU()]
        layers.append(nn.Linear(hidden, chunk_length * action_dim))
        self.trunk = nn.Sequential(*layers)
        # Iterative refinement like a flow-matching head: a = a + f(a, condition), `denoise_steps` times.
        self.denoise_steps = denoise_steps
        self.cond = nn.Linear(state_dim + env_dim + conv_channels * len(cameras), hidden)
        self.denoiser = nn.Sequential(nn.Linear(hidden + chunk_length * action_dim, hidden), nn.ReLU(),
                                      nn.Linear(hidden, chunk_length * action_dim))

    def forward(self, state: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        if self.fault == "raise_on_large_state" and bool((state.abs() > 1e3).any()):
            raise RuntimeError("TinyPolicy: simulated crash inside the model (state beyond 1e3)")
        images = rest[: len(self.encoders)]
        features = [state] + [enc(img) for enc, img in zip(self.encoders, images, strict=True)]
        if self.env_dim:
            features.append(rest[len(self.encoders)])
        condition = torch.cat(features, dim=1)
        flat = self.trunk(condition)
        if self.denoise_steps:
            cond = self.cond(condition)
            for _ in range(self.denoise_steps):
                flat = flat + 0.1 * self.denoiser(torch.cat([cond, flat], dim=1))
        out = 0.1 * torch.tanh(flat.view(-1, self.chunk_length, self.action_dim))
        if self.residual:
            out = out + state.unsqueeze(1)
        if self.fault == "nan":
            out = out * torch.nan
        return out


def build_tiny_policy(**kwargs: Any) -> TinyPolicy:
    """The factory named in saved cards: rebuilds the module; weights are loaded separately."""
    return TinyPolicy(**kwargs)


def tiny_spec(state_dim: int = 6, chunk_length: int = 50, cameras: Sequence[str] = ("front",),
              image_size: tuple[int, int] = (64, 64), env_dim: int = 0, name: str = "tiny") -> PolicySpec:
    """A PolicySpec matching the sim arm's names (6 joints incl. gripper) unless told otherwise."""
    joints = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
    names = tuple(f"{j}.pos" for j in joints[:state_dim]) if state_dim <= 6 else tuple(f"j{i}.pos" for i in range(state_dim))
    return PolicySpec(
        name=name, state_names=names, action_names=names, chunk_length=chunk_length,
        cameras=tuple(CameraSpec(c, image_size[0], image_size[1]) for c in cameras), environment_state_dim=env_dim,
    )


def make_tiny_policy(spec: PolicySpec, size: str = "tiny", seed: int = 0, fault: Fault = None) -> tuple[TinyPolicy, dict]:
    """A seeded TinyPolicy for `spec` and the kwargs that rebuild it."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; available: {sorted(SIZES)}")
    kwargs: dict[str, Any] = dict(
        state_dim=spec.state_dim, action_dim=spec.action_dim, chunk_length=spec.chunk_length,
        cameras=[[c.channels, c.height, c.width] for c in spec.cameras],
        env_dim=spec.environment_state_dim, fault=fault, **SIZES[size],
    )
    torch.manual_seed(seed)
    return TinyPolicy(**kwargs).eval(), kwargs


def example_inputs(spec: PolicySpec, batch: int = 1, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random inputs in the model's argument order (images in [0, 1])."""
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.rand((batch, *t.shape), generator=gen) for t in standard_inputs(spec))


def save_tiny_policy(out_dir: str | Path, spec: PolicySpec, fmt: Format = "state_dict", size: str = "tiny",
                     seed: int = 0, fault: Fault = None) -> Path:
    """Build, save and describe a TinyPolicy; returns the model path the backends take."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    module, kwargs = make_tiny_policy(spec, size=size, seed=seed, fault=fault)
    card = ModelCard(spec=spec, inputs=standard_inputs(spec))
    if fmt == "state_dict":
        path = out / "policy.pt"
        torch.save(module.state_dict(), path)
        card = ModelCard(spec=spec, inputs=card.inputs, model={"factory": FACTORY, "kwargs": kwargs})
    elif fmt == "exported":
        from policy_server.export_onnx import export_program

        path = out / "policy.pt2"
        export_program(module, spec, path)
    elif fmt == "onnx":
        from policy_server.export_onnx import export_module_to_onnx

        path = out / "policy.onnx"
        export_module_to_onnx(module, card, path)
    else:
        raise ValueError(f"unknown format {fmt!r}")
    write_card(path, card)
    return path
