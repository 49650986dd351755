"""PyTorch backend: a policy module or a torch.export program from a local path.

Formats (the model card next to the file says what the model takes, see `model_io`):
  - `*.pt2`: a torch.export ExportedProgram (`torch.export.save`), no Python code needed;
  - `*.pt` / `*.pth` / `*.safetensors`: a state dict loaded with `weights_only=True` (never
    unpickling code) into the module built by the card's `model.factory` ("module:function").

Options (`backend.options`): `compile` (torch.compile the module), `compile_backend` (default
inductor), `cuda_graphs` (capture one CUDA graph per batch size, fixed shapes), `warmup_iters`,
`threads` (CPU intra-op threads). Real-time chunking (policy_server/rtc.py): `action_prefix` = trained (the
default for a model trained with prefix conditioning) | inpaint (guided denoising toward the committed prefix, a
flow `VisuomotorPolicy`; `rtc_guidance_weight` β, default inf = inpainting: on our x-prediction flows the
ΠGDM Jacobian is weak and finite β barely moves the chunk, see README; `rtc_schedule` of the soft mask;
`rtc_guidance_from` τ0, guide only the Euler steps from flow time τ0 on) | none.
The policy spec then declares `action_prefix`, so clients send the prefix.
Streamed chunks (a flow policy trained with `--streaming`, FASTER's horizon-aware schedule): `infer_stream` yields
the first rows after the first flow step at which `stream_first_rows` of them are final (option; default a fifth of
the chunk), then after every later step that finishes more rows (`stream_every_step: false`: only the whole chunk); `streaming: false` serves such a policy without it (options `compile` and
`cuda_graphs` do not apply to the streamed path).
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from policy_server.backend import BackendError, PolicyBackend, PolicyInput
from policy_server.learning.model import InpaintingPolicy
from policy_server.model_io import (
    PREFIX_KEY,
    ModelCard,
    padded_prefix,
    read_card,
    require_file,
    split_actions,
    stack_inputs,
)
from policy_server.rtc import RtcOptions, rtc_row_weights
from vla_async.config import BackendConfig
from vla_async.specs import ACTION_PREFIX_KEY, STREAMING_KEY, PolicySpec, streaming_plan

log = logging.getLogger(__name__)
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def load_torch_policy(path: Path) -> tuple[torch.nn.Module, ModelCard]:
    """Load the module and its card from disk (CPU, float32, eval mode)."""
    card = read_card(path)
    try:
        if path.suffix == ".pt2":
            module = torch.export.load(str(path)).module()
        else:
            module = _build_from_factory(card)
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                state = load_file(str(path))
            else:
                state = torch.load(str(path), map_location="cpu", weights_only=True)
            missing, unexpected = module.load_state_dict(state, strict=True)
            if missing or unexpected:
                raise BackendError(f"weights in {path} do not fit the module: missing {missing[:5]}, "
                                   f"unexpected {unexpected[:5]}")
    except BackendError:
        raise
    except Exception as exc:  # torch raises many types for corrupt files
        raise BackendError(f"could not load torch policy {path}: {type(exc).__name__}: {exc}") from exc
    if hasattr(module, "eval") and not path.suffix == ".pt2":
        module.eval()
    return module, card


def _build_from_factory(card: ModelCard) -> torch.nn.Module:
    target = card.model.get("factory")
    if not target or ":" not in str(target):
        raise BackendError("model card has no model.factory ('module:function') to build the module from")
    module_name, _, attr = str(target).partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise BackendError(f"model factory {target!r} cannot be imported: {exc}") from exc
    return factory(**dict(card.model.get("kwargs", {})))


class TorchBackend(PolicyBackend):
    supports_batching = True

    def __init__(self, config: BackendConfig):
        path = require_file(config.path, "torch")
        options = dict(config.options)
        if options.get("threads"):
            torch.set_num_threads(int(options["threads"]))
        self.device = _device(config.device)
        self.dtype = DTYPES[config.dtype]
        module, self.card = load_torch_policy(path)
        self.rtc = _rtc_options(options, self.card, module)
        self._spec = _spec_with_streaming(_spec_with_prefix_mode(self.card.spec, self.rtc.mode), module, options)
        self._stream = streaming_plan(self._spec)
        self.module = module.to(self.device, self.dtype) if self.dtype != torch.float32 else module.to(self.device)
        if options.get("compile"):
            self.module = torch.compile(self.module, backend=options.get("compile_backend", "inductor"), dynamic=False)
        self.warmup_iters = int(options.get("warmup_iters", 2))
        self._graphs: _CudaGraphs | None = None
        if options.get("cuda_graphs"):
            if self.device.type != "cuda":
                raise BackendError("backend.options.cuda_graphs needs a CUDA device (backend.device=cuda)")
            self._graphs = _CudaGraphs(self._forward_tensors)
        self._check_load(path)

    @property
    def spec(self) -> PolicySpec:
        return self._spec

    def _check_load(self, path: Path) -> None:
        """One forward pass on zeros: wrong input names/shapes fail here, at load, with the model's message."""
        try:
            out = self._run(_zeros_batch(self.card, 1))
        except Exception as exc:
            shapes = ", ".join(f"{t.name} [1, {', '.join(map(str, t.shape))}]" for t in self.card.inputs)
            raise BackendError(f"torch policy {path} rejects the inputs its spec describes ({shapes}): "
                               f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
        split_actions(out, 1, self.spec)

    def warmup(self) -> None:
        batch = _zeros_batch(self.card, 1)
        for _ in range(self.warmup_iters):
            self._run(batch)

    def infer(self, batch: Sequence[PolicyInput]) -> list[np.ndarray]:
        arrays = stack_inputs(self.card, batch)
        guided = self.rtc.mode == "inpaint" and any(p.action_prefix is not None for p in batch)
        try:
            out = self._run_guided(arrays, batch) if guided else self._run(arrays)
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"torch policy failed: {type(exc).__name__}: {exc}") from exc
        return split_actions(out, len(batch), self.spec)

    def infer_stream(self, batch: Sequence[PolicyInput]) -> Iterator[tuple[int, list[np.ndarray]]]:
        """The horizon-aware flow run step by step: the chunks after the spec's first streamed step (its clean rows
        final), then after the last; a request with a prefix to inpaint, or a policy that does not stream, in one."""
        plan = self._stream
        if plan is None or (self.rtc.mode == "inpaint" and any(p.action_prefix is not None for p in batch)):
            yield from super().infer_stream(batch)
            return
        m = self.module
        arrays = stack_inputs(self.card, batch)
        tensors = [torch.from_numpy(arrays[t.name]).to(self.device, self.dtype) for t in self.card.inputs]
        try:
            with torch.inference_mode():
                images, task, offset, _ = m.split_inputs(tensors[0], tensors[1:])
                cond = m.condition(tensors[0], images, task, offset)
                sends = {step for step, _ in plan.sends}
                for k, (rows, x) in enumerate(m.sample_steps(cond), start=1):
                    if k in sends:
                        out = m.to_actions(x, tensors[0]).float().cpu().numpy()
                        yield rows, split_actions(out, len(batch), self.spec)
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"torch policy failed: {type(exc).__name__}: {exc}") from exc

    def _run(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        tensors = [torch.from_numpy(arrays[t.name]).to(self.device, self.dtype, non_blocking=True)
                   for t in self.card.inputs]
        with torch.inference_mode():
            out = self._graphs(tensors) if self._graphs is not None else self._forward_tensors(tensors)
            return out.float().cpu().numpy()

    def _run_guided(self, arrays: dict[str, np.ndarray], batch: Sequence[PolicyInput]) -> np.ndarray:
        """Inference-time RTC: the flow's Euler steps guided toward each input's committed prefix."""
        m = self.module
        tensors = [torch.from_numpy(arrays[t.name]).to(self.device, self.dtype) for t in self.card.inputs]
        state = tensors[0]
        horizon, dim = self.spec.chunk_length, self.spec.action_dim
        prefixes, weights = [], []
        for p in batch:
            prefixes.append(padded_prefix(p, horizon, dim)[0])
            rows = 0 if p.action_prefix is None else min(horizon, len(p.action_prefix))
            weights.append(rtc_row_weights(horizon, p.prefix_frozen, rows, self.rtc.schedule))
        prefix = torch.from_numpy(np.stack(prefixes)).to(self.device, self.dtype)
        rows_w = torch.from_numpy(np.stack(weights)).to(self.device, self.dtype)
        if math.isinf(self.rtc.guidance_weight):  # inpainting: the committed rows exactly as given
            with torch.no_grad():
                return InpaintingPolicy(m, self.rtc.guide_from)(state, *tensors[1:], prefix, rows_w).float().cpu().numpy()
        with torch.no_grad():
            images, task, offset, _ = m.split_inputs(state, tensors[1:])
            cond = m.condition(state, images, task, offset)
            y = m.normalise_chunk(prefix, state)
        x = m.sample_guided(cond, y, m.row_mask(rows_w), self.rtc.guidance_weight, guide_from=self.rtc.guide_from)
        with torch.no_grad():
            return m.to_actions(x, state).float().cpu().numpy()

    def _forward_tensors(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        return self.module(*tensors)

    def close(self) -> None:
        self._graphs = None
        self.module = None  # type: ignore[assignment]
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def _rtc_options(options: dict[str, Any], card: ModelCard, module: Any) -> RtcOptions:
    trained = any(t.source == PREFIX_KEY for t in card.inputs)
    try:
        rtc = RtcOptions.from_options(options, trained)
    except ValueError as exc:
        raise BackendError(str(exc)) from None
    if rtc.mode == "inpaint" and (not hasattr(module, "sample_guided") or getattr(module, "head", "") != "flow"):
        raise BackendError("backend.options.action_prefix=inpaint needs a flow-head VisuomotorPolicy "
                           "(policy_server.learning.model) loaded from a state dict, not an exported program")
    return rtc


def _spec_with_prefix_mode(spec: PolicySpec, mode: str | None) -> PolicySpec:
    """`spec` declaring `mode` as its action-prefix use (or none)."""
    extra = {k: v for k, v in spec.extra.items() if k != ACTION_PREFIX_KEY}
    if mode is not None:
        extra[ACTION_PREFIX_KEY] = mode
    return dataclasses.replace(spec, extra=extra)


def _spec_with_streaming(spec: PolicySpec, module: Any, options: dict[str, Any]) -> PolicySpec:
    """`spec` declaring streamed chunks when the module runs the horizon-aware schedule and `streaming` is not
    turned off; `stream_first_rows` sets the rows a first part waits for."""
    extra = {k: v for k, v in spec.extra.items() if k != STREAMING_KEY}
    if getattr(module, "streaming", False) and _flag(options.get("streaming", True)):
        from policy_server.learning.model import streaming_declaration

        first = options.get("stream_first_rows")
        try:
            extra[STREAMING_KEY] = streaming_declaration(module, None if first is None else int(first),
                                                         _flag(options.get("stream_every_step", True)))
        except (TypeError, ValueError):
            raise BackendError(f"backend.options.stream_first_rows must be an integer, got {first!r}") from None
    elif "streaming" in options and _flag(options["streaming"]):
        raise BackendError("backend.options.streaming=true needs a flow policy trained with --streaming")
    return dataclasses.replace(spec, extra=extra)


def _flag(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise BackendError(f"bad backend.device {name!r}: {exc}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BackendError(f"backend.device={name!r} but this torch has no CUDA device; use backend.device=cpu")
    return device


def _zeros_batch(card: ModelCard, batch: int) -> dict[str, np.ndarray]:
    return {t.name: np.zeros((batch, *t.shape), dtype=np.float32) for t in card.inputs}


class _CudaGraphs:
    """One captured CUDA graph per batch size: static input buffers are filled, the graph replayed."""

    def __init__(self, forward: Any):
        self.forward = forward
        self.graphs: dict[int, tuple[Any, list[torch.Tensor], torch.Tensor]] = {}

    def __call__(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        b = int(tensors[0].shape[0])
        if b not in self.graphs:
            self.graphs[b] = self._capture(tensors)
        graph, static_in, static_out = self.graphs[b]
        for dst, src in zip(static_in, tensors, strict=True):
            dst.copy_(src)
        graph.replay()
        return static_out.clone()

    def _capture(self, tensors: list[torch.Tensor]) -> tuple[Any, list[torch.Tensor], torch.Tensor]:
        static_in = [t.clone() for t in tensors]
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):  # warm up kernels / allocator outside the graph
                self.forward(static_in)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.forward(static_in)
        return graph, static_in, static_out
