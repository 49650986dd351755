"""The training loop: deterministic seeds, one or a few torch threads, progress bar, checkpoints,
a held-out validation error in joint units, a training-curve PNG, and a servable policy at the end
(`policy.pt` + `policy.spec.json`, loadable by the torch backend and `vla-async export-onnx`)."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from policy_server.learning.demos import Demos, load_datasets
from policy_server.learning.model import VisuomotorPolicy, parameter_count, streaming_declaration
from policy_server.learning.samples import Samples, build_recorded_prefix_samples, build_samples, vocabulary
from policy_server.model_io import (
    EXEC_OFFSET_KEY,
    IMAGE_PREFIX,
    PREFIX_KEY,
    PREFIX_MASK_KEY,
    STATE_KEY,
    TASK_KEY,
    ModelCard,
    TensorSpec,
    write_card,
)
from vla_async.seed_ranges import format_seeds
from vla_async.specs import ACTION_PREFIX_KEY, STREAMING_KEY, ActionKind, CameraSpec, PolicySpec

FACTORY = "policy_server.learning.model:build_policy"


@dataclass
class TrainConfig:
    dataset: str
    out: str
    head: str = "flow"
    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    chunk_length: int = 50
    flow_steps: int = 10
    flow_target: str = "data"
    flow_samples: int = 1
    seed: int = 0
    threads: int = 1
    labels: str = "expert"
    cameras: list[str] | None = None
    max_episodes: int | None = None
    val_fraction: float = 0.05
    time_budget_s: float | None = None
    cpu_budget_s: float | None = None  # stop after this much CPU time of the training process (fair on a shared machine)
    checkpoint_every: int = 500
    eval_every: int = 250
    vlash_latency_s: tuple[float, float] | None = None
    vlash_copies: int = 2
    vlash_state: str = "measured"
    plain_copy: bool = False
    exec_offset_input: bool = False
    prefix_ticks: tuple[int, int] | None = None  # prefix conditioning: committed rows d drawn from this range
    prefix_free_fraction: float = 0.25  # prefix conditioning: share of samples with d = 0 (the plain policy)
    # plan: the committed rows are the label's own first d rows; recorded: the commands recorded after the frame,
    # the rest of the label the expert's plan from the last of them (samples.build_recorded_prefix_samples)
    prefix_source: str = "plan"
    streaming: bool = False  # horizon-aware flow schedule (FASTER): near-term rows clean first, streamable
    init_from: str | None = None  # warm start: a policy.pt of the same architecture (prefix inputs may be new)
    augment_shift: int = 0  # random-shift image augmentation (DrQ): pad by this many pixels, crop back at random
    ema_decay: float = 0.0  # > 0: keep an exponential moving average of the weights; validate and save it
    aux_weight: float = 0.0  # > 0: auxiliary loss on privileged scene targets (training only, see labels.py)
    colour_keypoints: int = 0  # > 0: per camera, this many colour keypoints (model.ColourKeypoints)
    colour_temperature: float = 0.1  # their spatial softmax's initial temperature (learned)
    label_workers: int = 1  # processes relabelling with the expert before training (data preparation only)
    # > 0: drop samples whose normalised state or label offset exceeds this many standard deviations (the
    # model's normalisation): DAgger rollouts that ran into joint limits otherwise dominate the loss
    max_normalised: float = 0.0
    colour_pool: str = "avg"  # avg | max (model.ColourKeypoints)
    colour_init: str = "random"  # random | opponent (colour-opponent detectors to start from)
    camera_conv: bool = True  # False: colour keypoints only (no conv trunk per camera)
    progress: bool = True
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if min(self.steps, self.batch_size, self.threads, self.flow_samples) < 1:
            raise ValueError("steps, batch_size, threads and flow_samples must be >= 1")
        if any(b is not None and not b > 0 for b in (self.time_budget_s, self.cpu_budget_s)):
            raise ValueError("time and CPU budgets must be > 0 seconds")
        if self.augment_shift < 0 or not 0.0 <= self.ema_decay < 1.0 or self.aux_weight < 0:
            raise ValueError("augment_shift and aux_weight must be >= 0 and ema_decay in [0, 1)")
        if self.exec_offset_input and self.vlash_latency_s is None:
            raise ValueError("exec_offset_s as an input needs VLASH training (a latency range)")
        if self.prefix_ticks is not None:
            lo, hi = self.prefix_ticks
            if self.head != "flow" or not 0 <= lo <= hi <= self.chunk_length - 1:
                raise ValueError(f"prefix conditioning needs the flow head and 0 <= lo <= hi < chunk_length, "
                                 f"got {self.prefix_ticks} with head {self.head!r}")
        if self.prefix_source not in ("plan", "recorded"):
            raise ValueError(f"prefix_source must be 'plan' or 'recorded', got {self.prefix_source!r}")
        if self.prefix_source == "recorded" and (self.prefix_ticks is None or self.labels != "expert"
                                                 or self.vlash_latency_s is not None):
            raise ValueError("recorded prefixes need --prefix-ticks, expert labels and no --vlash")
        if self.streaming and (self.head != "flow" or self.prefix_ticks is not None):
            raise ValueError("--streaming needs the flow head and no --prefix-ticks")


@dataclass
class TrainResult:
    policy_path: Path
    steps: int
    train_seconds: float
    final_loss: float
    val_rmse_rad: float | None
    parameters: int


def train(cfg: TrainConfig) -> TrainResult:
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    demos = load_datasets(cfg.dataset, cfg.cameras, cfg.max_episodes)
    vocab = vocabulary(demos.instructions) if not cfg.init_from else _card_vocab(cfg.init_from)
    if cfg.prefix_source == "recorded":
        samples = build_recorded_prefix_samples(demos, vocab, cfg.chunk_length, cfg.prefix_ticks, cfg.prefix_free_fraction,
                                                cfg.seed, cfg.label_workers)
    else:
        samples = build_samples(demos, vocab, cfg.chunk_length, cfg.labels, cfg.vlash_latency_s, cfg.vlash_copies,
                                cfg.seed, cfg.vlash_state, cfg.plain_copy, cfg.label_workers)
    train_set, val_set = _split(demos, samples, cfg.val_fraction, cfg.seed)
    aux = SceneTargets.of(demos, train_set) if cfg.aux_weight > 0 else None
    prep_s = time.perf_counter() - t0
    kwargs = dict(state_dim=demos.states.shape[1], chunk_length=cfg.chunk_length, cameras=demos.cameras,
                  image_size=demos.image_size, vocab_size=len(vocab), exec_offset=cfg.exec_offset_input,
                  head=cfg.head, flow_steps=cfg.flow_steps, seed=cfg.seed, flow_target=cfg.flow_target,
                  prefix_conditioning=cfg.prefix_ticks is not None, streaming=cfg.streaming)
    if cfg.colour_keypoints:
        kwargs.update(colour_keypoints=cfg.colour_keypoints, colour_temperature=cfg.colour_temperature,
                      colour_pool=cfg.colour_pool, colour_init=cfg.colour_init)
    if not cfg.camera_conv:
        kwargs["camera_conv"] = False
    if aux is not None:
        kwargs["aux_dim"] = aux.dim
    model = VisuomotorPolicy(**kwargs)
    if cfg.init_from:
        warm_start(model, torch.load(cfg.init_from, map_location="cpu", weights_only=True))
    else:
        _normalise(model, train_set)
    if cfg.max_normalised > 0:
        before = len(train_set), len(val_set)
        train_set, val_set = (s.subset(within_normalisation(model, s, cfg.max_normalised)) for s in (train_set, val_set))
        print(f"train: dropped {before[0] - len(train_set)} train / {before[1] - len(val_set)} val samples beyond "
              f"{cfg.max_normalised:g} standard deviations (state or label offset)")
    print(f"train: {len(demos.episodes())} episodes, {len(demos)} frames, {len(train_set)} train / {len(val_set)} val "
          f"samples ({cfg.labels} labels{', VLASH' if cfg.vlash_latency_s else ''}), {parameter_count(model):,} "
          f"parameters, head={cfg.head}; data ready in {prep_s:.1f} s")
    history = _loop(model, demos, train_set, val_set, cfg, out, aux)
    model.eval()
    policy_path = out / "policy.pt"
    torch.save(model.state_dict(), policy_path)
    write_card(policy_path, _card(model, demos, vocab, kwargs, cfg, history))
    _plot(history, out / "training_curve.png", cfg.head)
    (out / "train_log.json").write_text(json.dumps({"config": asdict(cfg), "history": history}, indent=1))
    val = history["val_rmse_rad"][-1][1] if history["val_rmse_rad"] else None
    print(f"train: {history['steps']} steps in {history['train_seconds']:.1f} s wall, {history['cpu_seconds']:.1f} s CPU "
          f"({history['train_seconds'] / max(1, history['steps']) * 1000:.0f} ms/step, {cfg.threads} thread(s)); "
          f"final loss {history['loss'][-1][1]:.4f}; val chunk RMSE {val if val is None else round(val, 4)} rad → {policy_path}")
    if history["val_scene_rmse"]:
        print(f"train: held-out scene-target RMSE of the auxiliary head: {history['val_scene_rmse'][-1][1]}")
    return TrainResult(policy_path, history["steps"], history["train_seconds"], history["loss"][-1][1], val,
                       parameter_count(model))


def _card_vocab(policy_path: str) -> list[str]:
    """The task vocabulary of a trained policy (its card's task input), so a warm start keeps its embedding."""
    from policy_server.model_io import read_card

    return next((list(t.vocab) for t in read_card(policy_path).inputs if t.source == TASK_KEY), [])


def warm_start(model: VisuomotorPolicy, state: dict[str, torch.Tensor]) -> None:
    """Load `state` (weights and normalisation) into `model`. A layer that takes more inputs in `model` (the
    prefix mask appended to the flow MLP's input) keeps the old columns and starts the new ones at zero, so the
    warm-started policy computes exactly what the old one did until training changes it."""
    own = model.state_dict()
    problems = sorted(set(own) ^ set(state))
    if problems:
        raise ValueError(f"--init-from: the weights do not fit this model (keys differ: {problems[:5]})")
    for key, value in state.items():
        target = own[key]
        if value.shape != target.shape:
            if value.ndim != 2 or value.shape[0] != target.shape[0] or value.shape[1] > target.shape[1]:
                raise ValueError(f"--init-from: {key} has shape {list(value.shape)}, this model needs "
                                 f"{list(target.shape)}")
            value = torch.cat([value, torch.zeros(value.shape[0], target.shape[1] - value.shape[1])], dim=1)
        own[key] = value
    model.load_state_dict(own)


def _split(demos: Demos, samples: Samples, val_fraction: float, seed: int) -> tuple[Samples, Samples]:
    episodes = demos.episodes()
    n_val = int(round(len(episodes) * val_fraction)) if len(episodes) > 1 else 0
    rng = np.random.default_rng([seed, 0x5A11])
    val_eps = rng.choice(episodes, size=n_val, replace=False) if n_val else np.array([], np.int64)
    is_val = np.isin(demos.episode[samples.frame], val_eps)
    return samples.subset(~is_val), samples.subset(is_val)


def _normalise(model: VisuomotorPolicy, s: Samples) -> None:
    offsets = s.target - s.state[:, None, :]
    model.set_normalisation(torch.from_numpy(s.state.mean(0)), torch.from_numpy(s.state.std(0)),
                            torch.from_numpy(offsets.mean(0)), torch.from_numpy(offsets.std(0)))


def within_normalisation(model: VisuomotorPolicy, s: Samples, limit: float) -> np.ndarray:
    """[M] bool: the sample's state and label offsets lie within `limit` standard deviations of the model's
    normalisation."""
    state_z = (s.state - model.state_mean.numpy()) / model.state_std.numpy()
    offset_z = (s.target - s.state[:, None, :] - model.offset_mean.numpy()) / model.offset_std.numpy()
    return (np.abs(state_z).max(axis=1) <= limit) & (np.abs(offset_z).max(axis=(1, 2)) <= limit)


def batch_tensors(demos: Demos, s: Samples, idx: np.ndarray) -> tuple:
    frames = s.frame[idx]
    images = [torch.from_numpy(demos.images[c][frames]).permute(0, 3, 1, 2).float().div_(255.0) for c in demos.cameras]
    return (torch.from_numpy(s.state[idx]), images, torch.from_numpy(s.task[idx]),
            torch.from_numpy(s.exec_offset_s[idx])[:, None], torch.from_numpy(s.target[idx]))


def _loop(model: VisuomotorPolicy, demos: Demos, train_set: Samples, val_set: Samples, cfg: TrainConfig, out: Path,
          aux: SceneTargets | None = None) -> dict:
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    log = _Log(cfg, demos, val_set, aux)
    ema = WeightAverage(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    start, cpu_start = time.perf_counter(), time.process_time()
    for step in range(1, cfg.steps + 1):
        lr = learning_rate(cfg, step, time.perf_counter() - start, time.process_time() - cpu_start)
        idx = _batch_indices(len(train_set), cfg, gen)
        batch = batch_tensors(demos, train_set, idx)
        if cfg.augment_shift:
            batch[1][:] = [random_shift(img, cfg.augment_shift, gen) for img in batch[1]]
        extra = {} if aux is None else {"aux_target": aux.normalised(train_set.frame[idx]), "aux_weight": cfg.aux_weight}
        rows = (prefix_rows(cfg, len(batch[0]), gen) if train_set.prefix_rows is None
                else torch.from_numpy(train_set.prefix_rows[idx]))
        loss = _train_step(model, opt, lr, batch, gen, rows, cfg.flow_samples, extra)
        if ema is not None:
            ema.update(model)
        over_budget = budget_used(cfg, time.perf_counter() - start, time.process_time() - cpu_start) >= 1.0
        log.step(ema.averaged if ema is not None else model, step, loss, final=step == cfg.steps or over_budget)
        if step % cfg.checkpoint_every == 0:
            torch.save({"step": step, "model": model.state_dict(), "optimizer": opt.state_dict(),
                        **({"ema": ema.averaged.state_dict()} if ema is not None else {})}, out / "checkpoint.pt")
        if over_budget:
            print(f"\ntrain: budget reached at step {step} (wall {time.perf_counter() - start:.0f} s of "
                  f"{cfg.time_budget_s}, CPU {time.process_time() - cpu_start:.0f} s of {cfg.cpu_budget_s})")
            break
    log.close()
    if ema is not None:  # the served policy is the averaged one
        model.load_state_dict(ema.averaged.state_dict())
    log.history["train_seconds"] = time.perf_counter() - start
    log.history["cpu_seconds"] = time.process_time() - cpu_start
    return log.history


def random_shift(images: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """DrQ random shift: pad [B, C, H, W] by `pad` (edge pixels repeated) and crop each image back at a random
    offset, so the policy cannot rely on exact pixel positions."""
    b, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad), mode="replicate")
    dx, dy = torch.randint(0, 2 * pad + 1, (2, b), generator=gen).tolist()
    return torch.stack([padded[i, :, y:y + h, x:x + w] for i, (x, y) in enumerate(zip(dx, dy, strict=True))])


class WeightAverage:
    """Exponential moving average of a model's parameters (buffers copied): the weights that are validated,
    checkpointed and served."""

    def __init__(self, model: VisuomotorPolicy, decay: float):
        import copy

        self.decay = decay
        self.averaged = copy.deepcopy(model).eval()
        for p in self.averaged.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: VisuomotorPolicy) -> None:
        for avg, p in zip(self.averaged.parameters(), model.parameters(), strict=True):
            avg.lerp_(p.detach(), 1.0 - self.decay)
        for avg, b in zip(self.averaged.buffers(), model.buffers(), strict=True):
            avg.copy_(b)


@dataclass
class SceneTargets:
    """Privileged scene targets per frame (labels.scene_targets), normalised with the training set's mean and
    std: the auxiliary loss's targets. Never a policy input."""

    values: np.ndarray  # [N frames, K] in their own units (m, rad, 0/1)
    mean: np.ndarray
    std: np.ndarray
    names: tuple[str, ...]

    @classmethod
    def of(cls, demos: Demos, train_set: Samples) -> SceneTargets:
        from policy_server.learning.labels import scene_targets

        values = scene_targets(demos.environment_states, demos.instructions).astype(np.float32)
        seen = values[np.unique(train_set.frame)]
        names = tuple(load_scene_target_names())
        return cls(values, seen.mean(0), np.maximum(seen.std(0), 1e-3), names)

    @property
    def dim(self) -> int:
        return int(self.values.shape[1])

    def normalised(self, frames: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((self.values[frames] - self.mean) / self.std)

    def rmse(self, model: VisuomotorPolicy, cond: torch.Tensor, frames: np.ndarray) -> dict[str, float]:
        """Held-out RMSE of the auxiliary head per target, in the targets' units."""
        with torch.inference_mode():
            pred = model.aux_head(cond).numpy() * self.std + self.mean
        err = np.sqrt(np.mean((pred - self.values[frames]) ** 2, axis=0))
        return {n: round(float(e), 4) for n, e in zip(self.names, err, strict=True)}


def load_scene_target_names() -> tuple[str, ...]:
    from vla_async.registry import load

    return load("sim.tasks.layout:SCENE_TARGET_NAMES")


def _batch_indices(n: int, cfg: TrainConfig, gen: torch.Generator) -> np.ndarray:
    return torch.randint(n, (cfg.batch_size,), generator=gen).numpy()


def prefix_rows(cfg: TrainConfig, batch: int, gen: torch.Generator) -> torch.Tensor | None:
    """Committed rows per sample (prefix conditioning): 0 for a `prefix_free_fraction` share, else uniform in
    the range (at least 1)."""
    if cfg.prefix_ticks is None:
        return None
    lo, hi = cfg.prefix_ticks
    d = torch.randint(max(1, lo), max(1, hi) + 1, (batch,), generator=gen)
    free = torch.rand(batch, generator=gen) < cfg.prefix_free_fraction
    return torch.where(free, torch.zeros_like(d), d)


def _train_step(model: VisuomotorPolicy, opt: torch.optim.Optimizer, lr: float, batch: tuple,
                gen: torch.Generator, rows: torch.Tensor | None = None, flow_samples: int = 1,
                extra: dict | None = None) -> float:
    for group in opt.param_groups:
        group["lr"] = lr
    state, images, task, offset, target = batch
    model.train()
    loss = model.loss(state, images, task, offset, target, generator=gen, prefix_rows=rows, flow_samples=flow_samples,
                      **(extra or {}))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return float(loss.item())


class _Log:
    """Loss EMA, held-out error every `eval_every` steps and at the end, and the progress bar."""

    def __init__(self, cfg: TrainConfig, demos: Demos, val_set: Samples, aux: SceneTargets | None = None):
        self.cfg, self.demos, self.val_set, self.aux = cfg, demos, val_set, aux
        self.history: dict = {"loss": [], "val_rmse_rad": [], "val_scene_rmse": [], "steps": 0, "train_seconds": 0.0}
        self.ema: float | None = None
        self.bar = _bar(cfg)

    def step(self, model: VisuomotorPolicy, step: int, loss: float, final: bool) -> None:
        self.ema = loss if self.ema is None else 0.95 * self.ema + 0.05 * loss
        self.history["steps"] = step
        if step % 10 == 0 or final:
            self.history["loss"].append((step, self.ema))
        if len(self.val_set) and (step % self.cfg.eval_every == 0 or final):
            self.history["val_rmse_rad"].append((step, validate(model, self.demos, self.val_set)))
            if self.aux is not None:
                self.history["val_scene_rmse"].append((step, validate_scene(model, self.demos, self.val_set, self.aux)))
        if self.bar is not None:
            self.bar.update(1)
            if step % 10 == 0:
                val = self.history["val_rmse_rad"][-1][1] if self.history["val_rmse_rad"] else float("nan")
                self.bar.set_postfix(loss=f"{self.ema:.4f}", val_rmse=f"{val:.4f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def budget_used(cfg: TrainConfig, elapsed_s: float, cpu_s: float = 0.0) -> float:
    """The larger share used of the wall-clock and CPU-time budgets (0 when there is none)."""
    used = 0.0
    if cfg.time_budget_s:
        used = max(used, elapsed_s / cfg.time_budget_s)
    if cfg.cpu_budget_s:
        used = max(used, cpu_s / cfg.cpu_budget_s)
    return used


def learning_rate(cfg: TrainConfig, step: int, elapsed_s: float, cpu_s: float = 0.0, warmup: int = 100) -> float:
    """Linear warm-up, then cosine decay over the run's progress: the larger of the step fraction and,
    with a time or CPU budget, the share of it used (so a run cut by its budget still ends at a low rate)."""
    progress = max(step / cfg.steps, budget_used(cfg, elapsed_s, cpu_s))
    warm = min(1.0, step / min(warmup, max(1, cfg.steps // 10)))
    return cfg.lr * warm * 0.5 * (1.0 + np.cos(np.pi * min(1.0, progress)))


def validate(model: VisuomotorPolicy, demos: Demos, val_set: Samples, max_samples: int = 256) -> float:
    """RMSE (rad) between the chunks the model outputs (as served) and the labels, on held-out episodes."""
    idx = np.linspace(0, len(val_set) - 1, min(len(val_set), max_samples)).round().astype(int)
    state, images, task, offset, target = batch_tensors(demos, val_set, idx)
    inputs = [state, *images]
    if model.vocab_size:
        inputs.append(task)
    if model.exec_offset:
        inputs.append(offset)
    if model.prefix_conditioning:  # held out without a prefix: the plain policy
        inputs += [torch.zeros_like(target), torch.zeros(target.shape[:2])]
    model.eval()
    with torch.inference_mode():
        pred = model(*inputs)
    return float(torch.sqrt(torch.mean((pred - target) ** 2)))


def validate_scene(model: VisuomotorPolicy, demos: Demos, val_set: Samples, aux: SceneTargets,
                   max_samples: int = 256) -> dict[str, float]:
    """Held-out RMSE of the auxiliary head per scene target (how well the features localise what the
    instruction names), in the targets' units."""
    idx = np.linspace(0, len(val_set) - 1, min(len(val_set), max_samples)).round().astype(int)
    state, images, task, offset, _ = batch_tensors(demos, val_set, idx)
    model.eval()
    with torch.inference_mode():
        cond = model.condition(state, images, task if model.vocab_size else None, offset if model.exec_offset else None)
    return aux.rmse(model, cond, val_set.frame[idx])


def _flow_fields(cfg: TrainConfig) -> dict:
    flow = cfg.head == "flow"
    return {"flow_steps": cfg.flow_steps if flow else None, "flow_target": cfg.flow_target if flow else None,
            "flow_samples": cfg.flow_samples if flow else None, "streaming": cfg.streaming}


def _vlash_fields(cfg: TrainConfig) -> dict:
    vlash = cfg.vlash_latency_s is not None
    return {"vlash_latency_s": list(cfg.vlash_latency_s) if vlash else None,
            "vlash_state": cfg.vlash_state if vlash else None, "plain_copy": cfg.plain_copy}


def _card(model: VisuomotorPolicy, demos: Demos, vocab: list[str], kwargs: dict, cfg: TrainConfig, history: dict) -> ModelCard:
    size = demos.image_size
    cameras = tuple(CameraSpec(c, size, size) for c in demos.cameras)
    spec = PolicySpec(name=f"visuomotor-{cfg.head}", state_names=tuple(demos.state_names),
                      action_names=tuple(demos.state_names), chunk_length=cfg.chunk_length,
                      action_kind=ActionKind.ABSOLUTE, cameras=cameras, fps=demos.fps,
                      extra={"kind": "learned visuomotor policy", "head": cfg.head,
                             "tasks": sorted(set(demos.instructions)), "exec_offset_s_input": cfg.exec_offset_input,
                             **({ACTION_PREFIX_KEY: "trained"} if cfg.prefix_ticks else {}),
                             **({STREAMING_KEY: streaming_declaration(model)} if cfg.streaming else {})})
    inputs = [TensorSpec(STATE_KEY, "state", (len(demos.state_names),))]
    inputs += [TensorSpec(IMAGE_PREFIX + c.name, f"image:{c.name}", (3, size, size)) for c in cameras]
    inputs.append(TensorSpec(TASK_KEY, "task", (len(vocab),), vocab=tuple(vocab)))
    if cfg.exec_offset_input:
        inputs.append(TensorSpec(EXEC_OFFSET_KEY, "exec_offset_s", (1,)))
    if cfg.prefix_ticks:
        a = len(demos.state_names)
        inputs += [TensorSpec(PREFIX_KEY, PREFIX_KEY, (cfg.chunk_length, a)),
                   TensorSpec(PREFIX_MASK_KEY, PREFIX_MASK_KEY, (cfg.chunk_length,))]
    val = history["val_rmse_rad"][-1][1] if history["val_rmse_rad"] else None
    training = {"dataset": str(cfg.dataset), "episodes": int(len(demos.episodes())), "frames": len(demos),
                "scene_seeds": {task: format_seeds(seeds) for task, seeds in demos.scene_seeds.items()} or None,
                "labels": cfg.labels, "head": cfg.head, **_flow_fields(cfg),
                "steps": history["steps"], "batch_size": cfg.batch_size, "seed": cfg.seed, "threads": cfg.threads,
                "train_seconds": round(history["train_seconds"], 1),
                "cpu_seconds": round(history.get("cpu_seconds", 0.0), 1), "val_chunk_rmse_rad": val,
                **_vlash_fields(cfg),
                "prefix_ticks": list(cfg.prefix_ticks) if cfg.prefix_ticks else None, "init_from": cfg.init_from,
                "prefix_free_fraction": cfg.prefix_free_fraction if cfg.prefix_ticks else None,
                "prefix_source": cfg.prefix_source if cfg.prefix_ticks else None,
                "augment_shift": cfg.augment_shift, "ema_decay": cfg.ema_decay,
                "colour_keypoints": cfg.colour_keypoints,
                "colour_pool": cfg.colour_pool if cfg.colour_keypoints else None,
                "colour_init": cfg.colour_init if cfg.colour_keypoints else None,
                "aux_weight": cfg.aux_weight or None,
                "aux_targets": "privileged scene state (named cube pose and grasp flag, named zone xy), training only"
                               if cfg.aux_weight else None,
                "val_scene_rmse": history["val_scene_rmse"][-1][1] if history["val_scene_rmse"] else None,
                "parameters": parameter_count(model)}
    return ModelCard(spec=spec, inputs=tuple(inputs), model={"factory": FACTORY, "kwargs": kwargs, "training": training})


def _bar(cfg: TrainConfig):
    if not cfg.progress:
        return None
    try:
        from tqdm import tqdm
    except ModuleNotFoundError:
        return None
    return tqdm(total=cfg.steps, desc=f"train {cfg.head}", unit="step", mininterval=2.0)


def _plot(history: dict, path: Path, head: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    steps, loss = zip(*history["loss"], strict=True) if history["loss"] else ((), ())
    ax[0].plot(steps, loss)
    ax[0].set(xlabel="step", ylabel="training loss (EMA)", yscale="log", title=f"{head} head")
    if history["val_rmse_rad"]:
        vs, vr = zip(*history["val_rmse_rad"], strict=True)
        ax[1].plot(vs, vr, marker="o")
    ax[1].set(xlabel="step", ylabel="held-out chunk RMSE (rad)", title="validation")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
