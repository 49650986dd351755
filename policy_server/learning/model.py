"""A small visuomotor policy: images + proprioception + task (+ exec_offset_s) → H joint targets.

Per camera a small conv encoder ending in a spatial softmax (keypoints, as in Levine et al. and
diffusion policy's ResNet head), the normalised state, a learned embedding of the instruction's bag
of words and, when declared, `exec_offset_s` are concatenated and mixed by an MLP into a condition.
Two action heads predict the chunk as offsets from the current state (normalised per step and joint):
- `flow`: flow matching (as pi0 / SmolVLA) on x_τ = (1-τ)·noise + τ·target, integrated from τ=0
  to 1 with `flow_steps` Euler steps at inference, unrolled in the graph. The MLP f(x_τ, τ, cond)
  predicts either the velocity (`flow_target="velocity"`, pi0's parameterisation, loss
  ‖f − (target − noise)‖²) or the clean chunk (`"data"`, x-prediction: v = (f − x_τ)/(1 − τ), loss
  ‖f − target‖², free of the noise's variance, so it learns as fast as regression on this budget).
  The starting noise is one fixed N(0, I) draw stored in the model, so chunks are deterministic and
  the ONNX export needs no random op.
- `regression`: one linear layer from the condition (the baseline).
Streamed chunks (`streaming=True`, FASTER, arXiv 2603.19199): a horizon-aware flow schedule. Row i of the chunk
has its own flow time τ_i(t) = min(1, t/u_i) along the global time t ∈ [0, 1], u_i = 1/N + (1 − 1/N)·(i/(H−1))^p
(N = `flow_steps`, p = `stream_power`): row 0 is clean after the first Euler step, the last row after the last,
so the first rows can be sent before the rest is denoised (`sample_steps`). The MLP sees the per-row τ; training
draws t ~ U(0, 1) and the per-row τ from the same schedule (loss on the rows not yet clean).
`forward(state, *images, [task], [exec_offset_s], [action_prefix, prefix_mask])` returns absolute joint
targets [B, H, A].

Real-time chunking (sim-to-code notes in ../shared/papers.md, "Real-Time Chunking"):
- training-time prefix conditioning (`prefix_conditioning=True`, Black et al. 2512.05964): rows with
  `prefix_mask` 1 are given clean (the committed actions) at every flow step, the MLP also sees the mask,
  the loss covers the other rows only, and those rows are returned exactly as given;
- inference-time RTC (`sample_guided`, Black et al. 2506.07339): ΠGDM guidance of every Euler step toward
  the prefix with per-row weights W (1 on committed rows, a decaying soft mask over the overlap) through a
  vector-Jacobian product of the denoiser; `guidance_weight = inf` is its limit, the prefix's rows replaced in
  the denoised estimate (inpainting), which makes the committed rows exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

HEADS = ("flow", "regression")
FLOW_TARGETS = ("data", "velocity")


class SpatialSoftmax(nn.Module):
    """[B, C, H, W] feature maps → [B, 2C] expected (x, y) of each channel's softmax."""

    def __init__(self, height: int, width: int):
        super().__init__()
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
        self.register_buffer("coords", torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1))  # [HW, 2]
        self.log_temperature = nn.Parameter(torch.zeros(()))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        b, c, h, w = features.shape
        attention = F.softmax(features.reshape(b, c, h * w) / self.log_temperature.exp(), dim=-1)
        return (attention @ self.coords).reshape(b, 2 * c)


class ColourKeypoints(nn.Module):
    """Colour keypoints at half resolution: 1×1 convs (per-pixel colour detectors) and a spatial softmax over
    every pixel, so a few-pixel object (a 64 px camera sees a cube as ~3×3 px) has its own expected (x, y)
    instead of being averaged away by strided convolutions. `pool="avg"` halves the image first (2×2 mean);
    `"max"` runs the first detector layer at full resolution and keeps each 2×2 block's strongest response,
    so a small object's colour is not diluted by the background around it."""

    def __init__(self, image_size: int, channels: int, temperature: float = 0.1, pool: str = "avg",
                 init: str = "random"):
        super().__init__()
        if init not in ("random", "opponent"):
            raise ValueError(f"colour keypoint init must be 'random' or 'opponent', got {init!r}")
        if pool == "max":
            self.detect = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, channels, 1))
        elif pool == "avg":
            self.detect = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(3, 16, 1), nn.ReLU(), nn.Conv2d(16, channels, 1))
        else:
            raise ValueError(f"colour keypoint pool must be 'avg' or 'max', got {pool!r}")
        self.keypoints = SpatialSoftmax(image_size // 2, image_size // 2)
        with torch.no_grad():
            self.keypoints.log_temperature.fill_(math.log(temperature))
        if init == "opponent":
            self._opponent_init()
        self.out_dim = 2 * channels

    def forward(self, centred: torch.Tensor) -> torch.Tensor:
        return self.keypoints(self.detect(centred))

    @torch.no_grad()
    def _opponent_init(self) -> None:
        """Start the detectors as colour-opponent channels (red, green, blue, yellow, cyan, magenta: each
        colour minus the mean of the others, in the [-1, 1] image), thresholded so a grey table gives 0 and a
        saturated object ~4; the next layer passes them through. Only the starting point: all of it is learned
        (a random start took thousands of steps to find 3 px objects, if it found them)."""
        first, last = self.detect[0] if isinstance(self.detect[0], nn.Conv2d) else self.detect[1], self.detect[-1]
        directions = torch.tensor([[1, -0.5, -0.5], [-0.5, 1, -0.5], [-0.5, -0.5, 1], [0.5, 0.5, -1],
                                   [-1, 0.5, 0.5], [0.5, -1, 0.5]])
        k = min(len(directions), first.out_channels, last.out_channels)
        first.weight[:k, :, 0, 0] = 4.0 * directions[:k]
        first.bias[:k] = -1.0
        last.weight[:, :k].zero_()
        last.weight[:k, :k, 0, 0] = torch.eye(k)
        last.bias[:k] = 0.0


class CameraEncoder(nn.Module):
    """Per camera: a small strided conv trunk with spatial-softmax keypoints, and/or colour keypoints
    (`conv=False`: colour keypoints only, for scenes whose objects are told apart by colour; training is then
    several times cheaper, as the trunk's image-sized activations dominate the backward pass)."""

    def __init__(self, image_size: int, channels: int = 32, colour_keypoints: int = 0, colour_temperature: float = 0.1,
                 colour_pool: str = "avg", colour_init: str = "random", conv: bool = True):
        super().__init__()
        if not conv and not colour_keypoints:
            raise ValueError("a camera encoder without the conv trunk needs colour keypoints")
        self.convs: nn.Module | None = None
        self.keypoints: SpatialSoftmax | None = None
        if conv:
            self.convs = nn.Sequential(
                nn.Conv2d(3, 16, 5, stride=2), nn.ReLU(),
                nn.Conv2d(16, 16, 3), nn.ReLU(),
                nn.Conv2d(16, channels, 3),
            )
            side = (image_size - 5) // 2 + 1 - 4
            self.keypoints = SpatialSoftmax(side, side)
        self.colour = (ColourKeypoints(image_size, colour_keypoints, colour_temperature, colour_pool, colour_init)
                       if colour_keypoints else None)
        self.out_dim = (2 * channels if conv else 0) + (self.colour.out_dim if self.colour is not None else 0)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        centred = image * 2.0 - 1.0
        if self.convs is None:
            return self.colour(centred)
        features = self.keypoints(self.convs(centred))
        if self.colour is None:
            return features
        return torch.cat([features, self.colour(centred)], dim=1)


def mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


def time_embedding(tau: torch.Tensor, dim: int = 32) -> torch.Tensor:
    """Sinusoidal embedding of the flow time τ ∈ [0, 1], [B] → [B, dim]."""
    freqs = torch.exp(torch.arange(dim // 2, dtype=tau.dtype, device=tau.device) * (-math.log(1000.0) / (dim // 2)))
    angles = tau[:, None] * 1000.0 * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def _check_head(head: str, flow_target: str, prefix_conditioning: bool, streaming: bool, stream_power: float) -> None:
    if head not in HEADS or flow_target not in FLOW_TARGETS:
        raise ValueError(f"head must be one of {HEADS} and flow_target one of {FLOW_TARGETS}, "
                         f"got {head!r}, {flow_target!r}")
    if (prefix_conditioning or streaming) and head != "flow":
        raise ValueError("prefix conditioning and streaming need the flow head")
    if prefix_conditioning and streaming:
        raise ValueError("a model is either prefix-conditioned or streaming (both add per-row inputs)")
    if not stream_power > 0:
        raise ValueError(f"stream_power must be > 0, got {stream_power!r}")


class VisuomotorPolicy(nn.Module):
    def __init__(self, state_dim: int = 6, chunk_length: int = 50, cameras: Sequence[str] = ("front", "wrist"),
                 image_size: int = 64, vocab_size: int = 0, exec_offset: bool = False, head: str = "flow",
                 flow_steps: int = 10, width: int = 256, task_dim: int = 32, seed: int = 0,
                 flow_target: str = "data", prefix_conditioning: bool = False, streaming: bool = False,
                 stream_power: float = 1.0, aux_dim: int = 0, colour_keypoints: int = 0,
                 colour_temperature: float = 0.1, colour_pool: str = "avg", colour_init: str = "random",
                 camera_conv: bool = True):
        super().__init__()
        _check_head(head, flow_target, prefix_conditioning, streaming, stream_power)
        self.flow_target, self.prefix_conditioning = flow_target, prefix_conditioning
        self.streaming, self.stream_power = streaming, float(stream_power)
        torch.manual_seed(seed)
        self.state_dim, self.chunk_length, self.head = state_dim, chunk_length, head
        self.cameras, self.vocab_size, self.exec_offset, self.flow_steps = list(cameras), vocab_size, exec_offset, flow_steps
        self.encoders = nn.ModuleList(CameraEncoder(image_size, colour_keypoints=colour_keypoints,
                                                    colour_temperature=colour_temperature, colour_pool=colour_pool,
                                                    colour_init=colour_init, conv=camera_conv)
                                      for _ in self.cameras)
        self.task_embedding = nn.Linear(vocab_size, task_dim, bias=False) if vocab_size else None
        cond_in = sum(e.out_dim for e in self.encoders) + state_dim + (task_dim if vocab_size else 0) + int(exec_offset)
        self.trunk = nn.Sequential(mlp([cond_in, width, width]), nn.SiLU())
        out = chunk_length * state_dim
        if head == "flow":
            per_row = chunk_length if prefix_conditioning or streaming else 0
            self.velocity = mlp([out + 32 + width + per_row, width, width, out])
        else:
            self.regressor = nn.Linear(width, out)
        # auxiliary head (training only, not in the served graph): the condition → privileged scene targets
        self.aux_head = nn.Linear(width, aux_dim) if aux_dim else None
        for name in ("state_mean", "offset_mean"):
            self.register_buffer(name, torch.zeros(state_dim if name == "state_mean" else (chunk_length, state_dim)))
        self.register_buffer("state_std", torch.ones(state_dim))
        self.register_buffer("offset_std", torch.ones(chunk_length, state_dim))
        self.register_buffer("noise", torch.randn(chunk_length * state_dim, generator=torch.Generator().manual_seed(seed)))
        self.row_finish = horizon_schedule(chunk_length, flow_steps, stream_power) if streaming else None
        self.clean_after = clean_rows_per_step(self.row_finish, flow_steps) if streaming else None

    def set_normalisation(self, state_mean, state_std, offset_mean, offset_std, min_std: float = 1e-3) -> None:
        self.state_mean.copy_(torch.as_tensor(state_mean))
        self.state_std.copy_(torch.as_tensor(state_std).clamp_min(min_std))
        self.offset_mean.copy_(torch.as_tensor(offset_mean))
        self.offset_std.copy_(torch.as_tensor(offset_std).clamp_min(min_std))

    def condition(self, state: torch.Tensor, images: Sequence[torch.Tensor], task: torch.Tensor | None,
                  exec_offset: torch.Tensor | None) -> torch.Tensor:
        parts = [enc(img) for enc, img in zip(self.encoders, images, strict=True)]
        parts.append((state - self.state_mean) / self.state_std)
        if self.task_embedding is not None:
            parts.append(self.task_embedding(task))
        if self.exec_offset:
            parts.append(exec_offset * 5.0)  # seconds → O(1)
        return self.trunk(torch.cat(parts, dim=1))

    def split_inputs(self, state: torch.Tensor, rest: Sequence[torch.Tensor]):
        n = len(self.cameras)
        images, extra = list(rest[:n]), list(rest[n:])
        task = extra.pop(0) if self.vocab_size else None
        offset = extra.pop(0) if self.exec_offset else None
        prefix = (extra.pop(0), extra.pop(0)) if self.prefix_conditioning and len(extra) >= 2 else None
        if extra or (self.prefix_conditioning and prefix is None):
            raise ValueError(f"{len(extra)} unexpected input(s)" if extra else "missing action_prefix, prefix_mask")
        return images, task, offset, prefix

    def forward(self, state: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        images, task, offset, prefix = self.split_inputs(state, rest)
        cond = self.condition(state, images, task, offset)
        if self.head != "flow":
            return self.to_actions(self.regressor(cond), state)
        known = None if prefix is None else (self.normalise_chunk(prefix[0], state), self.row_mask(prefix[1]))
        return self.to_actions(self.sample(cond, known), state)

    def to_actions(self, normalised: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        offsets = normalised.reshape(-1, self.chunk_length, self.state_dim) * self.offset_std + self.offset_mean
        return state[:, None, :] + offsets

    def normalise_chunk(self, actions: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """Absolute joint targets [B, H, A] → the flow's normalised space [B, H·A]."""
        return ((actions - state[:, None, :] - self.offset_mean) / self.offset_std).reshape(actions.shape[0], -1)

    def row_mask(self, rows: torch.Tensor) -> torch.Tensor:
        """Per-row weights [B, H] → per-element [B, H·A]."""
        return rows[:, :, None].expand(-1, -1, self.state_dim).reshape(rows.shape[0], -1)

    def velocity_at(self, x: torch.Tensor, tau: torch.Tensor, cond: torch.Tensor,
                    rows: torch.Tensor | None = None) -> torch.Tensor:
        parts = [x, time_embedding(tau), cond]
        if self.streaming:  # per-row flow times [B, H]; the shared τ above is the global schedule time
            parts.append(rows if rows is not None else tau[:, None].expand(-1, self.chunk_length))
        elif self.prefix_conditioning:
            parts.append(rows if rows is not None else torch.zeros(x.shape[0], self.chunk_length, dtype=x.dtype,
                                                                   device=x.device))
        return self.velocity(torch.cat(parts, dim=1))

    def denoised(self, x: torch.Tensor, tau_value: float, cond: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The clean-chunk estimate x̂1 at flow time τ (x-prediction, or x + (1−τ)·velocity)."""
        tau = torch.full((cond.shape[0],), tau_value, dtype=cond.dtype, device=cond.device)
        f = self.velocity_at(x, tau, cond, rows)
        return f if self.flow_target == "data" else x + (1.0 - tau_value) * f

    def sample(self, cond: torch.Tensor, known: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Euler integration of the learned flow from the stored noise (τ=0) to an action chunk (τ=1).

        `known` = (normalised prefix y, element mask m): with prefix conditioning the masked elements are held at
        y (clean) at every step and in the result; the MLP sees the row mask. A streaming model follows its
        horizon-aware schedule (`sample_steps`)."""
        if self.streaming:
            *_, (_, x) = self.sample_steps(cond)
            return x
        x = self.noise[None, :].expand(cond.shape[0], -1)
        rows = None
        if known is not None:
            y, m = known
            rows = m.reshape(m.shape[0], self.chunk_length, self.state_dim)[:, :, 0]
            x = m * y + (1 - m) * x
        dt = 1.0 / self.flow_steps
        for k in range(self.flow_steps):
            x1 = self.denoised(x, k * dt, cond, rows)
            x = x + (x1 - x) / (self.flow_steps - k)  # Euler: dt · (x̂1 − x)/(1 − τ)
            if known is not None:
                x = m * y + (1 - m) * x
        return x

    def row_taus(self, t: float, like: torch.Tensor) -> torch.Tensor:
        """Per-row flow times τ_i(t) = min(1, t/u_i) of the horizon-aware schedule, [B, H] like `like` [B, ...]."""
        u = torch.tensor(self.row_finish, dtype=like.dtype, device=like.device)
        return (t / u).clamp(max=1.0)[None, :].expand(like.shape[0], -1)

    def sample_steps(self, cond: torch.Tensor):
        """Streaming Euler integration (horizon-aware schedule): yields (clean rows, x [B, H·A]) after each of the
        `flow_steps` steps; rows below the count are final (never updated again), so they can be sent at once."""
        x = self.noise[None, :].expand(cond.shape[0], -1)
        n = self.flow_steps
        for k in range(n):
            t0, t1 = k / n, (k + 1) / n
            tau0, tau1 = self.row_taus(t0, cond), self.row_taus(t1, cond)
            f = self.velocity_at(x, torch.full((cond.shape[0],), t0, dtype=cond.dtype, device=cond.device), cond,
                                 tau0)
            x1 = f if self.flow_target == "data" else x + self.row_mask(1.0 - tau0) * f
            # Euler on each row's own τ: x += Δτ/(1 − τ)·(x̂1 − x); a row reaching τ = 1 becomes x̂1 exactly
            step = torch.where(tau0 < 1.0, (tau1 - tau0) / (1.0 - tau0).clamp_min(1e-6), torch.zeros_like(tau0))
            x = x + self.row_mask(step) * (x1 - x)
            yield self.clean_after[k], x

    def sample_guided(self, cond: torch.Tensor, y: torch.Tensor, weights: torch.Tensor,
                      guidance_weight: float, clip: float = 3.0, guide_from: float = 0.0) -> torch.Tensor:
        """Inference-time RTC: Euler steps with ΠGDM guidance toward the normalised prefix `y` [B, H·A] under
        element weights `weights` [B, H·A] (Black et al. 2506.07339, Alg. 1): v + min(β, (1−τ)/(τ·r²))·
        (y − x̂1)ᵀ diag(W) ∂x̂1/∂x, r² = (1−τ)²/(τ² + (1−τ)²). β = inf: x̂1 ← (1−W)·x̂1 + W·y (inpainting).

        The error W·(y − x̂1) and the guidance term are clipped to ±`clip` (normalised units): rows the data barely spreads (the first
        actions, offset std ~1e-3) would otherwise turn a small joint-space gap into a huge, out-of-distribution
        pull. (The backend writes the committed rows of an inpainted chunk back exactly, in joint units.)
        `guide_from` τ0: steps at τ < τ0 are plain (a guidance interval): the early steps, which set the chunk's
        overall course, plan from the observation alone; the late ones join it to the prefix."""
        x = self.noise[None, :].expand(cond.shape[0], -1).clone()
        cond = cond.detach()
        hard = math.isinf(guidance_weight)
        for k in range(self.flow_steps):
            tau = k / self.flow_steps
            guided = tau >= guide_from - 1e-9  # guidance only from flow time `guide_from` on
            if hard or not guided:
                with torch.no_grad():
                    x1 = self.denoised(x, tau, cond)
                    if guided:  # inpainting
                        x1 = x1 + (weights * (y - x1)).clamp(-clip, clip)
                x = x + (x1 - x) / (self.flow_steps - k)
                continue
            with torch.enable_grad():
                xg = x.detach().requires_grad_(True)
                x1 = self.denoised(xg, tau, cond)
                (vjp,) = torch.autograd.grad(x1, xg, grad_outputs=(weights * (y - x1.detach())).clamp(-clip, clip))
            beta = guidance_weight
            if tau > 0:
                r2 = (1 - tau) ** 2 / (tau ** 2 + (1 - tau) ** 2)
                beta = min(beta, (1 - tau) / (tau * r2))
            x = (x + ((x1.detach() - x) / (1 - tau) + beta * vjp.clamp(-clip, clip)) / self.flow_steps).detach()
        return x

    def loss(self, state: torch.Tensor, images: Sequence[torch.Tensor], task: torch.Tensor | None,
             exec_offset: torch.Tensor | None, target: torch.Tensor, generator: torch.Generator | None = None,
             prefix_rows: torch.Tensor | None = None, flow_samples: int = 1,
             aux_target: torch.Tensor | None = None, aux_weight: float = 1.0) -> torch.Tensor:
        """Training loss for absolute target chunks [B, H, A] (normalised offset space); `prefix_rows` [B] (prefix
        conditioning): how many leading rows of each target are given clean as the committed prefix.

        `flow_samples` (flow head): (noise, τ) draws per sample; the image encoders run once per sample,
        so extra draws cost only the small velocity MLP and give the head more training signal per step.
        `aux_target` [B, aux_dim] (normalised privileged scene targets): adds `aux_weight` × the MSE of the
        auxiliary head, which makes the encoders localise what the instruction names.
        """
        cond = self.condition(state, images, task, exec_offset)
        aux = 0.0
        if aux_target is not None and self.aux_head is not None:
            aux = aux_weight * F.mse_loss(self.aux_head(cond), aux_target)
        return aux + self._action_loss(cond, target, state, generator, prefix_rows, flow_samples)

    def _action_loss(self, cond: torch.Tensor, target: torch.Tensor, state: torch.Tensor,
                     generator: torch.Generator | None, prefix_rows: torch.Tensor | None,
                     flow_samples: int) -> torch.Tensor:
        x1 = self.normalise_chunk(target, state)
        if self.head == "regression":
            return F.mse_loss(self.regressor(cond), x1)
        if flow_samples > 1:
            cond, x1 = cond.repeat(flow_samples, 1), x1.repeat(flow_samples, 1)
            prefix_rows = None if prefix_rows is None else prefix_rows.repeat(flow_samples)
        x0 = torch.randn(x1.shape, generator=generator, dtype=x1.dtype)
        tau = torch.rand(x1.shape[0], generator=generator, dtype=x1.dtype)
        if self.streaming:
            return self._streaming_loss(x0, x1, tau, cond)
        x_tau = (1 - tau[:, None]) * x0 + tau[:, None] * x1
        rows = None
        if self.prefix_conditioning and prefix_rows is not None:  # committed rows clean, loss on the others
            rows = (torch.arange(self.chunk_length)[None, :] < prefix_rows[:, None]).to(x1.dtype)
            m = self.row_mask(rows)
            x_tau = m * x1 + (1 - m) * x_tau
        f = self.velocity_at(x_tau, tau, cond, rows)
        err = (f - (x1 - x0 if self.flow_target == "velocity" else x1)) ** 2
        if rows is None:
            return err.mean()
        free = 1 - m
        return (err * free).sum() / free.sum().clamp_min(1.0)


    def _streaming_loss(self, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Loss at global times `t` [B] with the per-row τ of the horizon-aware schedule, over the rows not yet
        clean (a clean row is given as it is and never updated)."""
        u = torch.tensor(self.row_finish, dtype=x1.dtype)
        taus = (t[:, None] / u[None, :]).clamp(max=1.0)  # [B, H]
        m = self.row_mask(taus)
        x_tau = (1 - m) * x0 + m * x1
        f = self.velocity_at(x_tau, t, cond, taus)
        err = (f - (x1 - x0 if self.flow_target == "velocity" else x1)) ** 2
        free = self.row_mask((taus < 1.0).to(x1.dtype))
        return (err * free).sum() / free.sum().clamp_min(1.0)


def horizon_schedule(chunk_length: int, flow_steps: int, power: float = 1.0) -> tuple[float, ...]:
    """u_i, the global flow time at which row i is clean: 1/N for row 0, 1 for the last row (FASTER)."""
    first = 1.0 / flow_steps
    if chunk_length == 1:
        return (first,)
    return tuple(first + (1.0 - first) * (i / (chunk_length - 1)) ** power for i in range(chunk_length))


def clean_rows_per_step(row_finish: Sequence[float], flow_steps: int) -> tuple[int, ...]:
    """Rows clean after each Euler step k (those with u_i ≤ (k+1)/N): a non-decreasing count, H after the last."""
    out = []
    for k in range(flow_steps):
        t = (k + 1) / flow_steps
        out.append(sum(1 for u in row_finish if u <= t + 1e-9))
    out[-1] = len(row_finish)
    return tuple(out)


class InpaintingPolicy(nn.Module):
    """Inference-time RTC at β = ∞ (inpainting) as a plain graph, exportable to ONNX (no autograd):
    `forward(state, *policy_inputs, action_prefix [B, H, A], prefix_weights [B, H])`; rows weighted 1 come back
    exactly as given. A prefix-trained policy's own prefix inputs, when among `policy_inputs`, are ignored (its
    plain mode)."""

    def __init__(self, policy: VisuomotorPolicy, guide_from: float = 0.0):
        super().__init__()
        if policy.head != "flow":
            raise ValueError("inpainting needs a flow policy")
        self.policy = policy
        self.guide_from = guide_from  # flow time from which the steps are inpainted (0: every step)

    def forward(self, state: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        p = self.policy
        *inputs, prefix, weights = rest
        images, task, offset, _ = p.split_inputs(state, inputs)
        cond = p.condition(state, images, task, offset)
        x = p.sample_guided(cond, p.normalise_chunk(prefix, state), p.row_mask(weights), math.inf,
                            guide_from=self.guide_from)
        return torch.where(weights[:, :, None] >= 1.0, prefix, p.to_actions(x, state))


def streaming_declaration(model: VisuomotorPolicy, first_rows: int | None = None, every_step: bool = True) -> dict:
    """The policy spec's `streaming` entry (`vla_async.specs.streaming_plan` reads it): flow steps, rows clean
    after each, the rows a first part waits for (default: a fifth of the chunk), and whether every later step's
    new rows are sent as they are done (else the rest at the end)."""
    h = model.chunk_length
    first = max(1, math.ceil(h / 5)) if first_rows is None else int(first_rows)
    return {"steps": model.flow_steps, "clean_rows": list(model.clean_after), "first_rows": min(h, max(1, first)),
            "every_step": bool(every_step)}


def build_policy(**kwargs) -> VisuomotorPolicy:
    """Factory named in model cards (`policy_server.learning.model:build_policy`)."""
    return VisuomotorPolicy(**kwargs)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
