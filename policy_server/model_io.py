"""What a model file takes and returns, in one place for the torch, ONNX and LeRobot backends.

A generic model (torch or ONNX) is described by a *model card*: the PolicySpec it serves plus its
ordered input tensors. The card lives in a sidecar file next to the model (`<model>.spec.json`)
or, for ONNX, in the model's metadata under `vla_async.model_card`.

Input convention (LeRobot's names, so exported LeRobot policies and our own look the same):
  observation.state              [B, state_dim] float32
  observation.images.<camera>    [B, C, H, W] float32 in [0, 1]  (robot sends HWC uint8)
  observation.environment_state  [B, env_dim] float32
and one output `action` [B, H, action_dim]. Two optional inputs, declared in the card:
  task                           [B, len(vocab)] float32: bag of words of the instruction over the
                                 input's `vocab` (1 where the word occurs; other words are ignored)
  exec_offset_s                  [B, 1] float32: seconds from the observation's capture to the
                                 chunk's first action (PolicyInput.exec_offset_s; 0 without rollforward)
  action_prefix                  [B, H, action_dim] float32: the committed action prefix (real-time chunking),
                                 row i for the chunk's row i; rows past the prefix are zeros
  prefix_mask                    [B, H] float32: 1 for the committed rows (PolicyInput.prefix_frozen), else 0
  prefix_weights                 [B, H] float32: RTC's soft mask over the prefix (an inpainting graph from
                                 `vla-async export-onnx --rtc-inpaint`; its card declares `action_prefix: inpaint`)
A model without a `task` input ignores the task text. A model with the two prefix inputs was trained with
prefix conditioning: its card's spec declares `action_prefix: trained`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from policy_server.backend import BackendError, PolicyInput
from policy_server.rtc import rtc_row_weights
from vla_async.policy_input import EXEC_OFFSET_KEY as POLICY_EXEC_OFFSET_KEY
from vla_async.specs import ACTION_PREFIX_KEY, PolicySpec, SpecError, action_prefix_mode

CARD_FORMAT = "vla-async-model/1"
METADATA_KEY = "vla_async.model_card"
STATE_KEY = "observation.state"
ENV_KEY = "observation.environment_state"
IMAGE_PREFIX = "observation.images."
OUTPUT_NAME = "action"
TASK_KEY = "task"
EXEC_OFFSET_KEY = "exec_offset_s"
PREFIX_KEY = "action_prefix"
PREFIX_MASK_KEY = "prefix_mask"
PREFIX_WEIGHTS_KEY = "prefix_weights"  # [H]: RTC's soft mask (policy_server/rtc.py, exp schedule) for an inpainting graph


@dataclass(frozen=True)
class TensorSpec:
    """One model input: its name, where its values come from, and its shape without the batch dim."""

    name: str
    source: str  # "state" | "environment_state" | "image:<camera>" | "task" | "exec_offset_s"
    shape: tuple[int, ...]
    dtype: str = "float32"
    vocab: tuple[str, ...] = ()  # source "task": the words, in tensor order

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "source": self.source, "shape": list(self.shape), "dtype": self.dtype}
        return out | ({"vocab": list(self.vocab)} if self.vocab else {})


@dataclass(frozen=True)
class ModelCard:
    """The PolicySpec a model serves, its ordered inputs, and free-form loader details (`model`)."""

    spec: PolicySpec
    inputs: tuple[TensorSpec, ...]
    output: str = OUTPUT_NAME
    model: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The information contract: a model with an exec_offset_s input declares it in its spec, so the
        # server (and the evaluator) send the offset to it, and never to a model without that input.
        takes_offset = any(t.source == EXEC_OFFSET_KEY for t in self.inputs)
        if bool(self.spec.extra.get(POLICY_EXEC_OFFSET_KEY, False)) != takes_offset:
            spec = dataclasses.replace(self.spec, extra={**self.spec.extra, POLICY_EXEC_OFFSET_KEY: takes_offset})
            object.__setattr__(self, "spec", spec)
        # likewise a model with prefix inputs accepts the committed action prefix (trained for it)
        if any(t.source == PREFIX_KEY for t in self.inputs) and action_prefix_mode(self.spec) is None:
            spec = dataclasses.replace(self.spec, extra={**self.spec.extra, ACTION_PREFIX_KEY: "trained"})
            object.__setattr__(self, "spec", spec)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": CARD_FORMAT,
                "policy_spec": self.spec.to_dict(),
                "inputs": [t.to_dict() for t in self.inputs],
                "output": self.output,
                "model": dict(self.model),
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str, origin: str = "model card") -> ModelCard:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BackendError(f"{origin}: not valid JSON ({exc})") from exc
        if not isinstance(data, dict) or data.get("format") != CARD_FORMAT:
            raise BackendError(f"{origin}: not a {CARD_FORMAT} card (format={data.get('format')!r})"
                               if isinstance(data, dict) else f"{origin}: must be a JSON object")
        try:
            spec = PolicySpec.from_dict(data["policy_spec"])
            inputs = tuple(
                TensorSpec(str(t["name"]), str(t["source"]), tuple(int(d) for d in t["shape"]),
                           str(t.get("dtype", "float32")), tuple(str(w) for w in t.get("vocab", ())))
                for t in data["inputs"]
            )
            for t in inputs:
                _check_special_input(t)
        except (KeyError, TypeError, ValueError, SpecError) as exc:
            raise BackendError(f"{origin}: malformed card: {exc}") from exc
        return cls(spec=spec, inputs=inputs, output=str(data.get("output", OUTPUT_NAME)),
                   model=dict(data.get("model") or {}))


def _check_special_input(t: TensorSpec) -> None:
    if t.source == TASK_KEY and (not t.vocab or t.shape != (len(t.vocab),)):
        raise ValueError(f"input {t.name!r}: a task input needs a vocab and shape [len(vocab)], got "
                         f"shape {list(t.shape)} with {len(t.vocab)} words")
    if t.source == EXEC_OFFSET_KEY and t.shape != (1,):
        raise ValueError(f"input {t.name!r}: exec_offset_s has shape [1], got {list(t.shape)}")
    if t.source in (PREFIX_KEY, PREFIX_MASK_KEY, PREFIX_WEIGHTS_KEY) and len(t.shape) != (2 if t.source == PREFIX_KEY else 1):
        raise ValueError(f"input {t.name!r}: {t.source} has shape [H{', action_dim' if t.source == PREFIX_KEY else ''}], "
                         f"got {list(t.shape)}")


def task_words(text: str) -> list[str]:
    """Lower-case words of an instruction (what a task input's vocab is made of)."""
    return re.findall(r"[a-z0-9]+", text.lower())


def encode_task(text: str, vocab: Sequence[str]) -> np.ndarray:
    """Bag of words of `text` over `vocab`; a BackendError when none of its words is known."""
    index = {w: i for i, w in enumerate(vocab)}
    out = np.zeros(len(vocab), np.float32)
    for word in task_words(text):
        if word in index:
            out[index[word]] = 1.0
    if not out.any():
        raise BackendError(f"task {text!r} has none of the words this policy was trained on "
                           f"({' '.join(vocab[:12])}{' ...' if len(vocab) > 12 else ''})")
    return out


def standard_inputs(spec: PolicySpec) -> tuple[TensorSpec, ...]:
    """The input tensors a generic model for `spec` takes, in forward() argument order."""
    inputs = [TensorSpec(STATE_KEY, "state", (spec.state_dim,))]
    for cam in spec.cameras:
        inputs.append(TensorSpec(IMAGE_PREFIX + cam.name, f"image:{cam.name}", (cam.channels, cam.height, cam.width)))
    if spec.environment_state_dim:
        inputs.append(TensorSpec(ENV_KEY, "environment_state", (spec.environment_state_dim,)))
    return tuple(inputs)


def sidecar_path(model_path: str | Path) -> Path:
    """`dir/policy.onnx` → `dir/policy.spec.json`; a checkpoint directory → `dir/policy.spec.json`."""
    path = Path(model_path)
    if path.is_dir():
        return path / "policy.spec.json"
    return path.with_name(path.name.split(".")[0] + ".spec.json")


def write_card(model_path: str | Path, card: ModelCard) -> Path:
    target = sidecar_path(model_path)
    target.write_text(card.to_json())
    return target


def read_card(model_path: str | Path) -> ModelCard:
    target = sidecar_path(model_path)
    if not target.is_file():
        raise BackendError(f"no model card for {model_path}: expected the sidecar file {target}")
    return ModelCard.from_json(target.read_text(), origin=str(target))


def require_file(path: str | None, backend: str) -> Path:
    if not path:
        raise BackendError(f"backend {backend!r} needs backend.path (a model file)")
    resolved = Path(path).expanduser()
    if not resolved.exists():
        raise BackendError(f"backend {backend!r}: model path {resolved} does not exist")
    return resolved


def check_declared_inputs(
    declared: Mapping[str, tuple[tuple[Any, ...], str]], card: ModelCard, model_desc: str
) -> None:
    """Compare what a model file declares (name -> (shape with batch dim, dtype)) with the card.

    Dims that are not ints (symbolic / dynamic) match anything. Every difference goes in one error.
    """
    problems: list[str] = []
    for t in card.inputs:
        if t.name not in declared:
            problems.append(f"input {t.name!r} ({t.source}) is missing; the model has {sorted(declared)}")
            continue
        shape, dtype = declared[t.name]
        want = (None, *t.shape)
        if len(shape) != len(want) or any(
            isinstance(h, int) and w is not None and h != w for h, w in zip(shape, want, strict=True)
        ):
            problems.append(f"input {t.name!r}: model takes shape {list(shape)}, spec gives [batch, {', '.join(map(str, t.shape))}]")
        if dtype != t.dtype:
            problems.append(f"input {t.name!r}: model takes {dtype}, spec gives {t.dtype}")
    extra = sorted(set(declared) - {t.name for t in card.inputs})
    if extra:
        problems.append(f"model inputs {extra} are not produced from the spec")
    if problems:
        raise BackendError(f"{model_desc} does not match its spec:\n  - " + "\n  - ".join(problems))


def stack_inputs(card: ModelCard, batch: Sequence[PolicyInput]) -> dict[str, np.ndarray]:
    """Batch the robots' inputs into the model's tensors (images HWC uint8 → CHW float32 in [0, 1])."""
    if not batch:
        raise BackendError("empty batch")
    arrays: dict[str, np.ndarray] = {}
    for t in card.inputs:
        arrays[t.name] = _stack_images(t, batch) if t.source.startswith("image:") else _stack_values(t, batch)
        _check_shape(t, arrays[t.name])
    return arrays


def _environment_state(t: TensorSpec, p: PolicyInput) -> np.ndarray:
    if p.environment_state is None:
        raise BackendError(f"input {t.name!r} needs environment_state, which the robot did not send")
    return np.asarray(p.environment_state, dtype=np.float32)


def padded_prefix(p: PolicyInput, rows: int, action_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(the committed prefix padded with zeros to [rows, action_dim], the row mask [rows]: 1 on committed rows)."""
    prefix = np.zeros((rows, action_dim), np.float32)
    mask = np.zeros(rows, np.float32)
    if p.action_prefix is not None:
        given = np.asarray(p.action_prefix, dtype=np.float32)[:rows]
        if given.ndim != 2 or given.shape[1] != action_dim:
            raise BackendError(f"action_prefix has shape {list(given.shape)}, the policy takes [≤{rows}, {action_dim}]")
        prefix[: len(given)] = given
        mask[: min(p.prefix_frozen, len(given))] = 1.0
    return prefix, mask


_VALUE_SOURCES = {
    "state": lambda t, p: np.asarray(p.state, dtype=np.float32),
    "environment_state": _environment_state,
    TASK_KEY: lambda t, p: encode_task(p.task, t.vocab),
    EXEC_OFFSET_KEY: lambda t, p: np.array([p.exec_offset_s], dtype=np.float32),
    PREFIX_KEY: lambda t, p: padded_prefix(p, *t.shape)[0],
    PREFIX_MASK_KEY: lambda t, p: padded_prefix(p, t.shape[0], 1 if p.action_prefix is None
                                                else np.shape(p.action_prefix)[-1])[1],
    PREFIX_WEIGHTS_KEY: lambda t, p: rtc_row_weights(t.shape[0], p.prefix_frozen,
                                                     0 if p.action_prefix is None else len(p.action_prefix)),
}


def _stack_values(t: TensorSpec, batch: Sequence[PolicyInput]) -> np.ndarray:
    read = _VALUE_SOURCES.get(t.source)
    if read is None:
        raise BackendError(f"input {t.name!r}: unknown source {t.source!r}")
    return np.stack([read(t, p) for p in batch])


def _stack_images(t: TensorSpec, batch: Sequence[PolicyInput]) -> np.ndarray:
    cam = t.source.partition(":")[2]
    if any(cam not in p.images for p in batch):
        raise BackendError(f"input {t.name!r} needs camera {cam!r}, which the robot did not send")
    hwc = np.stack([np.asarray(p.images[cam]) for p in batch])
    if hwc.ndim == 3:  # grayscale without channel axis
        hwc = hwc[..., None]
    scale = np.float32(1.0 / 255.0) if hwc.dtype == np.uint8 else np.float32(1.0)
    return np.ascontiguousarray(hwc.transpose(0, 3, 1, 2), dtype=np.float32) * scale


def example_arrays(card: ModelCard, batch: int, rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Inputs in the card's order for tracing and checks: uniform [0, 1) (zeros without `rng`)."""
    shapes = [(batch, *t.shape) for t in card.inputs]
    if rng is None:
        return [np.zeros(s, np.float32) for s in shapes]
    return [rng.random(s, dtype=np.float32) for s in shapes]


def _check_shape(t: TensorSpec, array: np.ndarray) -> None:
    if tuple(array.shape[1:]) != tuple(t.shape):
        raise BackendError(f"input {t.name!r}: got shape {list(array.shape[1:])}, model expects {list(t.shape)}")


def split_actions(output: Any, batch_size: int, spec: PolicySpec) -> list[np.ndarray]:
    """[B, H, A] model output → B float32 chunks [H, A]; a wrong shape is a BackendError."""
    array = np.asarray(output)
    want = (batch_size, spec.chunk_length, spec.action_dim)
    if array.shape != want:
        raise BackendError(f"model output {OUTPUT_NAME!r} has shape {list(array.shape)}, expected {list(want)}")
    return [np.ascontiguousarray(a, dtype=np.float32) for a in array]


def resolve_key_map(
    needed: Sequence[str], available: Sequence[str], explicit: Mapping[str, str] | None = None, what: str = "camera"
) -> dict[str, str]:
    """Map each key the policy needs to a key the robot has: explicit mapping first, then same name,
    then the unique name that the needed key ends with (e.g. `observation.images.front` → `front`)."""
    explicit = dict(explicit or {})
    mapping: dict[str, str] = {}
    problems: list[str] = []
    for key in needed:
        short = key.rsplit(".", 1)[-1]
        if key in explicit:
            chosen = explicit[key]
            if chosen not in available:
                problems.append(f"{what} map {key!r} -> {chosen!r}: robot has no {chosen!r}")
                continue
        elif key in available:
            chosen = key
        elif short in available:
            chosen = short
        else:
            problems.append(f"policy needs {what} {key!r}; robot has {sorted(available) or 'none'}")
            continue
        mapping[key] = chosen
    if problems:
        raise BackendError(
            f"{what} mismatch between policy and robot (set backend.options.{what}_map to map names):\n  - "
            + "\n  - ".join(problems)
        )
    return mapping
