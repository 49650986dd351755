"""ONNX Runtime backend: CUDA execution provider with I/O binding when there is a GPU, CPU otherwise.

The model card (spec + inputs) is read from the model's metadata (`vla_async.model_card`, written by
`vla-async export-onnx`) or from the sidecar `<model>.spec.json`. The model's declared inputs are
checked against the card when it loads, so a wrong model fails at start-up with every difference.

Options (`backend.options`): `threads` (intra-op threads), `warmup_iters`, `graph_optimization`
(`all` | `extended` | `basic` | `disable`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from policy_server.backend import BackendError, PolicyBackend, PolicyInput
from policy_server.model_io import (
    METADATA_KEY,
    ModelCard,
    check_declared_inputs,
    read_card,
    require_file,
    split_actions,
    stack_inputs,
)
from vla_async.config import BackendConfig
from vla_async.specs import STREAMING_KEY, PolicySpec

log = logging.getLogger(__name__)

ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
              "tensor(int64)": "int64", "tensor(uint8)": "uint8", "tensor(bfloat16)": "bfloat16"}
OPT_LEVELS = {
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
}


def choose_providers(device: str) -> list[str]:
    """CUDA first when asked for and available; CPU always as the fallback (logged)."""
    available = ort.get_available_providers()
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" in available:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        log.warning("onnx backend: device %s requested but onnxruntime has no CUDAExecutionProvider "
                    "(available: %s); falling back to CPU (install onnxruntime-gpu for CUDA)", device, available)
    return ["CPUExecutionProvider"]


class OnnxBackend(PolicyBackend):
    supports_batching = True

    def __init__(self, config: BackendConfig):
        path = require_file(config.path, "onnx")
        options = dict(config.options)
        so = ort.SessionOptions()
        if options.get("threads"):
            so.intra_op_num_threads = int(options["threads"])
        so.graph_optimization_level = OPT_LEVELS[str(options.get("graph_optimization", "all"))]
        providers = choose_providers(config.device)
        try:
            self.session = ort.InferenceSession(str(path), sess_options=so, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise BackendError(f"could not load ONNX model {path}: {str(exc).splitlines()[0]}") from exc
        self.on_cuda = self.session.get_providers()[0] == "CUDAExecutionProvider"
        log.info("onnx backend: %s on %s", path.name, self.session.get_providers()[0])
        self.card = _card_for(self.session, path)
        # the exported graph runs the whole flow at once: a streaming policy's parts cannot be sent from it
        extra = {k: v for k, v in self.card.spec.extra.items() if k != STREAMING_KEY}
        self._spec = dataclasses.replace(self.card.spec, extra=extra)
        declared = {i.name: (tuple(i.shape), ORT_DTYPES.get(i.type, i.type)) for i in self.session.get_inputs()}
        check_declared_inputs(declared, self.card, f"ONNX model {path}")
        outputs = [o.name for o in self.session.get_outputs()]
        if self.card.output not in outputs:
            raise BackendError(f"ONNX model {path} has no output {self.card.output!r}; it has {outputs}")
        batch_dim = self.session.get_inputs()[0].shape[0]
        self.supports_batching = not isinstance(batch_dim, int)
        self.warmup_iters = int(options.get("warmup_iters", 2))
        self.device_id = int(config.device.partition(":")[2] or 0) if self.on_cuda else 0

    @property
    def spec(self) -> PolicySpec:
        return self._spec

    def warmup(self) -> None:
        zeros = {t.name: np.zeros((1, *t.shape), dtype=np.float32) for t in self.card.inputs}
        for _ in range(self.warmup_iters):
            self._run(zeros)

    def infer(self, batch: Sequence[PolicyInput]) -> list[np.ndarray]:
        if not self.supports_batching and len(batch) > 1:
            return [chunk for one in batch for chunk in self.infer([one])]
        arrays = stack_inputs(self.card, batch)
        try:
            out = self._run(arrays)
        except Exception as exc:
            raise BackendError(f"ONNX model failed: {str(exc).splitlines()[0]}") from exc
        return split_actions(out, len(batch), self.spec)

    def _run(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        if not self.on_cuda:
            return self.session.run([self.card.output], arrays)[0]
        binding = self.session.io_binding()
        for name, array in arrays.items():
            binding.bind_cpu_input(name, array)
        binding.bind_output(self.card.output, "cuda", self.device_id)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]


def _card_for(session: ort.InferenceSession, path: Path) -> ModelCard:
    meta = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY in meta:
        return ModelCard.from_json(meta[METADATA_KEY], origin=f"{path} metadata")
    return read_card(path)
