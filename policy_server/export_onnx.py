"""`vla-async export-onnx`: export a torch (or LeRobot ACT) policy to ONNX and check it matches.

A LeRobot ACT checkpoint is exported with its saved normaliser/unnormaliser baked in (inputs and
output in robot units, like the lerobot backend); Diffusion is refused (its sampling is random).

The exported file carries its model card in the ONNX metadata (and a sidecar next to it), so the
ONNX backend needs nothing else. After export, the original and the ONNX model run on the same
random inputs (batch 1 and a larger batch) and the largest absolute difference is printed and
checked against `--atol` (default 1e-4 for float32): exit code 1 when it is exceeded.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from policy_server.model_io import (
    METADATA_KEY,
    OUTPUT_NAME,
    ModelCard,
    example_arrays,
    standard_inputs,
    write_card,
)
from vla_async.specs import PolicySpec

DEFAULT_OPSET = 17


def export_program(module: Any, spec: PolicySpec, path: str | Path, max_batch: int = 256) -> Path:
    """torch.export the module with a dynamic batch dimension and save it as a .pt2 file."""
    import torch

    from policy_server.tiny_models import example_inputs

    args = example_inputs(spec, batch=2)
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    program = torch.export.export(module, args, dynamic_shapes=_batch_dynamic_shapes(module, len(args), batch))
    torch.export.save(program, str(path))
    return Path(path)


def _batch_dynamic_shapes(module: Any, n_args: int, batch: Any) -> tuple:
    """Dim 0 of every input is the batch; `forward(a, *rest)` needs the rest as a nested tuple."""
    import inspect

    params = list(inspect.signature(module.forward).parameters.values())
    fixed = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return (*({0: batch} for _ in fixed), tuple({0: batch} for _ in range(n_args - len(fixed))))
    return tuple({0: batch} for _ in range(n_args))


def export_module_to_onnx(module: Any, card: ModelCard, path: str | Path, opset: int = DEFAULT_OPSET) -> Path:
    """Export `module(*inputs) -> [B, H, A]` with a dynamic batch dim; embed the card in the metadata."""
    import warnings

    import onnx
    import torch

    args = tuple(torch.from_numpy(a) for a in example_arrays(card, 2, np.random.default_rng(0)))
    names = [t.name for t in card.inputs]
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore", DeprecationWarning)
        # Tracing warns about Python control flow it bakes in (e.g. LeRobot's fixed token loops);
        # the numeric check after export is what guards the result, on batch sizes unlike the traced one.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # The TorchScript-based exporter: needs no onnxscript and handles our fixed-shape policies.
        torch.onnx.export(
            module, args, str(path), input_names=names, output_names=[OUTPUT_NAME], opset_version=opset,
            dynamic_axes={n: {0: "batch"} for n in [*names, OUTPUT_NAME]}, dynamo=False,
        )
    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, card.to_json()
    onnx.save(model, str(path))
    return Path(path)


def max_difference(reference: Callable[[list[np.ndarray]], np.ndarray], onnx_path: str | Path,
                   card: ModelCard, batch_sizes: Sequence[int] = (1, 3), seed: int = 0) -> float:
    """Largest |reference − onnx| over random inputs of each batch size."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    worst = 0.0
    for b in batch_sizes:
        inputs = [rng.random((b, *t.shape), dtype=np.float32) for t in card.inputs]
        want = np.asarray(reference(inputs), dtype=np.float64)
        got = session.run([card.output], {t.name: x for t, x in zip(card.inputs, inputs, strict=True)})[0]
        if want.shape != got.shape:
            raise ValueError(f"batch {b}: original gives shape {want.shape}, ONNX gives {got.shape}")
        worst = max(worst, float(np.max(np.abs(want - got))))
    return worst


def _torch_reference(module: Any) -> Callable[[list[np.ndarray]], np.ndarray]:
    import torch

    def run(inputs: list[np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            return module(*(torch.from_numpy(x) for x in inputs)).float().numpy()

    return run


def load_source(kind: str, path: Path) -> tuple[Any, ModelCard]:
    """The torch module to export and its card: a torch policy file, or a LeRobot checkpoint dir."""
    if kind == "torch":
        from policy_server.backends.torch_backend import load_torch_policy

        return load_torch_policy(path)
    if kind == "lerobot":
        from policy_server.backends.lerobot_backend import exportable_module

        return exportable_module(path)
    raise ValueError(f"unknown source kind {kind!r}; use torch or lerobot")


def inpainting_graph(module: Any, card: ModelCard, guide_from: float = 0.0) -> tuple[Any, ModelCard]:
    """`module` wrapped for inference-time RTC by inpainting (the Euler steps from flow time `guide_from` on), and
    its card with the two prefix inputs and the guidance interval."""
    import dataclasses

    from policy_server.learning.model import InpaintingPolicy, VisuomotorPolicy
    from policy_server.model_io import PREFIX_KEY, PREFIX_WEIGHTS_KEY, TensorSpec
    from vla_async.specs import ACTION_PREFIX_KEY

    if not isinstance(module, VisuomotorPolicy) or any(t.source == PREFIX_KEY for t in card.inputs):
        raise ValueError("needs a plain flow VisuomotorPolicy loaded from a .pt state dict")
    if not 0.0 <= guide_from < 1.0:
        raise ValueError(f"the guidance start must be a flow time in [0, 1), got {guide_from}")
    wrapped = InpaintingPolicy(module, guide_from).eval()
    h, a = card.spec.chunk_length, card.spec.action_dim
    inputs = (*card.inputs, TensorSpec(PREFIX_KEY, PREFIX_KEY, (h, a)), TensorSpec(PREFIX_WEIGHTS_KEY, PREFIX_WEIGHTS_KEY, (h,)))
    spec = dataclasses.replace(card.spec, extra={**card.spec.extra, ACTION_PREFIX_KEY: "inpaint"})
    model = {**dict(card.model or {}), "rtc_inpaint": {"guidance_from": guide_from}}
    return wrapped, ModelCard(spec=spec, inputs=inputs, output=card.output, model=model)


def _portable(model: Any) -> dict[str, Any]:
    """The card's loader details minus what only the torch file needs (the ONNX graph replaces it)."""
    return {k: v for k, v in dict(model or {}).items() if k not in ("factory", "kwargs")}


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="vla-async export-onnx", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["torch", "lerobot"], default="torch", help="what --path holds")
    parser.add_argument("--path", required=True, help="torch policy file (.pt2 or .pt + card) or LeRobot checkpoint dir")
    parser.add_argument("--out", required=True, help="output .onnx file")
    parser.add_argument("--atol", type=float, default=1e-4, help="max abs difference allowed (float32)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--rtc-inpaint", action="store_true",
                        help="a flow VisuomotorPolicy with inference-time RTC (inpainting, β = ∞) in the graph: two more "
                             "inputs, action_prefix and prefix_weights; the card declares action_prefix: inpaint")
    parser.add_argument("--rtc-guidance-from", type=float, default=0.0, metavar="TAU",
                        help="with --rtc-inpaint: inpaint only the Euler steps from flow time TAU on (0: every step); "
                             "the early steps then plan from the observation alone, the late ones join the prefix")
    args = parser.parse_args(list(argv))

    from policy_server.backend import BackendError

    try:
        module, card = load_source(args.backend, Path(args.path))
    except BackendError as exc:
        print(f"export-onnx: {exc}", file=sys.stderr)
        return 2
    card = ModelCard(spec=card.spec, inputs=card.inputs or standard_inputs(card.spec), output=card.output,
                     model=_portable(card.model))
    if args.rtc_guidance_from and not args.rtc_inpaint:
        print("export-onnx: --rtc-guidance-from needs --rtc-inpaint", file=sys.stderr)
        return 2
    if args.rtc_inpaint:
        try:
            module, card = inpainting_graph(module, card, args.rtc_guidance_from)
        except ValueError as exc:
            print(f"export-onnx: --rtc-inpaint: {exc}", file=sys.stderr)
            return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        export_module_to_onnx(module, card, out, opset=args.opset)
    except Exception as exc:  # the exporter raises many types; say which model failed and why
        print(f"export-onnx: torch.onnx.export failed for {args.path}: {type(exc).__name__}: "
              f"{str(exc).splitlines()[0] if str(exc) else ''}", file=sys.stderr)
        return 2
    write_card(out, card)
    if card.model.get("training"):
        from policy_server.learning.model_card import write_model_card_md

        write_model_card_md(out, card)
    diff = max_difference(_torch_reference(module), out, card)
    ok = diff <= args.atol
    result = {"out": str(out), "max_abs_diff": diff, "atol": args.atol, "match": ok}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"exported {args.path} -> {out}; max |torch - onnx| = {diff:.3g} "
              f"({'within' if ok else 'EXCEEDS'} atol {args.atol:g})")
    return 0 if ok else 1
