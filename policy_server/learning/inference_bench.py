"""`python -m policy_server.learning.inference_bench MODEL.onnx`: p50/p99 of one chunk through the
ONNX backend (input stacking included), batch 1, on the CPU, with the instruction from the model card."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np


def measure(path: str, iters: int = 500, threads: int = 1, seed: int = 0) -> dict[str, float]:
    from policy_server.backend import PolicyInput, create_backend
    from vla_async.config import BackendConfig

    backend = create_backend(BackendConfig(name="onnx", path=path, options={"threads": threads}))
    spec = backend.spec
    rng = np.random.default_rng(seed)
    tasks = list(spec.extra.get("tasks", [])) or [""]
    item = PolicyInput(state=rng.uniform(-0.5, 0.5, spec.state_dim).astype(np.float32),
                       images={c.name: rng.integers(0, 256, c.shape, dtype=np.uint8) for c in spec.cameras},
                       task=tasks[0], exec_offset_s=0.2)
    backend.warmup()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        backend.infer([item])
        times.append((time.perf_counter() - t0) * 1000.0)
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)), "iters": iters}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m policy_server.learning.inference_bench", description=__doc__)
    p.add_argument("model")
    p.add_argument("--iters", type=int, default=500)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    r = measure(args.model, args.iters, args.threads)
    print(f"{args.model}: onnxruntime CPU, {args.threads} thread(s), batch 1: p50 {r['p50_ms']:.3f} ms, "
          f"p99 {r['p99_ms']:.3f} ms per chunk ({r['iters']} chunks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
