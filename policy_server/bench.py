"""`vla-async bench server`: server overhead per chunk and batching throughput, over real sockets.

Each robot is a real PolicyClient (DEALER) on 127.0.0.1 against an in-process PolicyServer; in the
throughput runs the robots live in a child process (one thread waiting on all their sockets with
`wait_any`), so their encode/decode does not share the server's GIL (`--clients-in-process` to compare).
  - overhead: one robot, one request at a time; per chunk the server's time outside the model
    forward and outside queueing (ServerTiming.total − model − queue), p50/p99 in ms;
  - throughput: N robots in closed loop (each sends its next observation when its chunk arrives)
    for a fixed time, first with batching off (max_batch=1) for 1 robot, then with batching on for
    N robots; chunks/s in total, per-robot chunk counts (fairness) and batch sizes.
Prints numbers; never passes or fails on time.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from policy_server.backend import PolicyBackend, create_backend
from vla_async.config import BackendConfig, BatchingConfig, NetworkConfig, ServerConfig
from vla_async.messages import ErrorMessage, Observation
from vla_async.specs import PolicySpec, RobotSpec


@dataclass
class RobotLoad:
    """What one simulated robot sends: state, camera images, environment state."""

    robot_spec: RobotSpec
    state: np.ndarray
    images: dict[str, np.ndarray]
    env: np.ndarray | None

    @classmethod
    def for_policy(cls, spec: PolicySpec, seed: int = 0) -> RobotLoad:
        rng = np.random.default_rng(seed)
        robot = RobotSpec(name=f"bench-{seed}", fps=spec.fps or 30.0, state_names=spec.state_names,
                          action_names=spec.action_names, action_kind=spec.action_kind, cameras=spec.cameras,
                          environment_state_dim=spec.environment_state_dim)
        images = {c.name: rng.integers(0, 256, c.shape, dtype=np.uint8) for c in spec.cameras}
        env = rng.uniform(-1, 1, spec.environment_state_dim).astype(np.float32) if spec.environment_state_dim else None
        return cls(robot, rng.uniform(-0.5, 0.5, spec.state_dim).astype(np.float32), images, env)

    def observation(self, request_id: int) -> Observation:
        return Observation(request_id=request_id, tick=request_id, exec_tick=request_id, state=self.state,
                           images=self.images, task="bench", environment_state=self.env, deadline_ms=10_000)


def make_backend(name: str, size: str, workdir: Path, image_size: int, threads: int | None) -> PolicyBackend:
    """The backend under test; torch/onnx get a seeded TinyPolicy saved to `workdir`."""
    options = {"threads": threads} if threads else {}
    if name in ("torch", "onnx"):
        from policy_server.tiny_models import save_tiny_policy, tiny_spec

        spec = tiny_spec(cameras=("front",), image_size=(image_size, image_size), chunk_length=50)
        path = save_tiny_policy(workdir / name, spec, fmt="state_dict" if name == "torch" else "onnx", size=size)
        return create_backend(BackendConfig(name=name, path=str(path), options=options))
    return create_backend(BackendConfig(name=name, options=options))


def _server(backend: PolicyBackend, max_batch: int, max_wait_ms: float):  # -> PolicyServer
    from policy_server.server import PolicyServer

    config = ServerConfig(network=NetworkConfig(port=0, request_timeout_s=30.0),
                          batching=BatchingConfig(max_batch=max_batch, max_wait_ms=max_wait_ms))
    return PolicyServer(config, backend, port=0)


def _clients(port: int, loads: Sequence[RobotLoad]) -> list:
    from vla_async.transport import PolicyClient

    clients = []
    for i, load in enumerate(loads):
        client = PolicyClient(NetworkConfig(port=port, request_timeout_s=30.0), f"robot{i}", load.robot_spec)
        client.connect(timeout_s=10.0)
        clients.append(client)
    return clients


def measure_overhead(backend: PolicyBackend, requests: int) -> dict[str, float]:
    """One robot, sequential requests: the server's overhead per chunk in ms."""
    load = RobotLoad.for_policy(backend.spec)
    overhead, model, total, rtt = [], [], [], []
    with _server(backend, max_batch=1, max_wait_ms=0.0) as server:
        (client,) = _clients(server.port, [load])
        try:
            for i in range(requests):
                client.submit(load.observation(i))
                item = _next_reply(client)
                t = item.chunk.timing
                overhead.append(t.overhead_ms)
                model.append(t.model_ms)
                total.append(t.total_ms)
                rtt.append((item.received_at - item.sent_at) * 1e3)
        finally:
            client.close()
    skip = min(5, requests // 10)  # first chunks pay one-off costs (allocations, caches)
    pct = lambda xs, q: float(np.percentile(xs[skip:], q))  # noqa: E731
    return {"requests": requests, "overhead_p50_ms": pct(overhead, 50), "overhead_p99_ms": pct(overhead, 99),
            "model_p50_ms": pct(model, 50), "server_total_p50_ms": pct(total, 50), "round_trip_p50_ms": pct(rtt, 50)}


def _next_reply(client, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        client.wait(0.5)
        for item in client.poll():
            if isinstance(item, ErrorMessage):
                raise RuntimeError(f"server error during bench: {item.code.value}: {item.message}")
            return item
    raise TimeoutError("no reply within 30 s")


def closed_loop(port: int, loads: Sequence[RobotLoad], duration_s: float) -> dict[str, object]:
    """`len(loads)` real PolicyClients in closed loop (each sends its next observation as soon as its
    chunk arrives) for `duration_s`; per-robot chunk counts and the batch size of every chunk."""
    from vla_async.transport import wait_any

    counts = [0] * len(loads)
    batch_sizes: list[int] = []
    clients = _clients(port, loads)
    try:
        next_id = [0] * len(loads)
        for i, c in enumerate(clients):
            c.submit(loads[i].observation(0))
        start = time.monotonic()
        end = start + duration_s
        while time.monotonic() < end:
            wait_any(clients, 0.05)
            for i, c in enumerate(clients):
                for item in c.poll():
                    if isinstance(item, ErrorMessage):
                        raise RuntimeError(f"server error during bench: {item.code.value}: {item.message}")
                    counts[i] += 1
                    batch_sizes.append(item.chunk.timing.batch_size)
                    next_id[i] += 1
                    c.submit(loads[i].observation(next_id[i]))
        elapsed = time.monotonic() - start
    finally:
        for c in clients:
            c.close()
    return {"chunks": sum(counts), "elapsed_s": elapsed, "per_robot_chunks": counts, "batch_sizes": batch_sizes}


def _client_process(port: int, spec_json: str, robots: int, duration_s: float, out: Any) -> None:
    """Child process body: the robots' closed loop; the result goes back as JSON text (never pickle)."""
    spec = PolicySpec.from_dict(json.loads(spec_json))
    try:
        result: dict[str, object] = closed_loop(port, [RobotLoad.for_policy(spec, seed=i) for i in range(robots)],
                                                duration_s)
    except Exception as exc:  # reported by the parent
        result = {"error": f"{type(exc).__name__}: {exc}"}
    out.put(json.dumps(result))


def _closed_loop_in_child(port: int, spec: PolicySpec, robots: int, duration_s: float) -> dict[str, object]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    child = ctx.Process(target=_client_process, args=(port, json.dumps(spec.to_dict()), robots, duration_s, out),
                        name="bench-robots", daemon=True)
    child.start()
    try:
        result = json.loads(out.get(timeout=duration_s + 60.0))
    finally:
        child.join(10.0)
        if child.is_alive():
            child.kill()
    if "error" in result:
        raise RuntimeError(f"robot process failed: {result['error']}")
    return result


def measure_throughput(backend: PolicyBackend, robots: int, duration_s: float, max_batch: int,
                       max_wait_ms: float, clients_in_process: bool = False) -> dict[str, object]:
    """`robots` clients in closed loop for `duration_s` against an in-process server; total chunks/s,
    per-robot counts (fairness) and batch sizes. By default the robots run in a child process so that
    client work (encode/decode, their threads) does not share the server's GIL."""
    with _server(backend, max_batch=max_batch, max_wait_ms=max_wait_ms) as server:
        if clients_in_process:
            loads = [RobotLoad.for_policy(backend.spec, seed=i) for i in range(robots)]
            result = closed_loop(server.port, loads, duration_s)
        else:
            result = _closed_loop_in_child(server.port, backend.spec, robots, duration_s)
    sizes = result["batch_sizes"]
    return {"robots": robots, "max_batch": max_batch, "chunks": result["chunks"],
            "chunks_per_s": result["chunks"] / result["elapsed_s"], "per_robot_chunks": result["per_robot_chunks"],
            "mean_batch_size": float(np.mean(sizes)) if sizes else 0.0}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vla-async bench server", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="torch", help="torch | onnx | linear | expert")
    parser.add_argument("--size", default="flow", help="TinyPolicy size for torch/onnx: tiny | small | medium | flow | 100m")
    parser.add_argument("--image-size", type=int, default=64, help="camera image side in pixels")
    parser.add_argument("--requests", type=int, default=300, help="sequential requests for the overhead numbers")
    parser.add_argument("--robots", type=int, default=8)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per throughput run")
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=None, help="backend intra-op threads")
    parser.add_argument("--clients-in-process", action="store_true",
                        help="run the robots' clients in the server's process (default: a child process)")
    parser.add_argument("--json", dest="json_path", help="also write the results to this JSON file")
    args = parser.parse_args(list(argv or []))

    with tempfile.TemporaryDirectory() as tmp:
        backend = make_backend(args.backend, args.size, Path(tmp), args.image_size, args.threads)
        print(f"backend {args.backend} ({backend.spec.name}, size {args.size}, "
              f"batching {'yes' if backend.supports_batching else 'no'}) on 127.0.0.1")
        overhead = measure_overhead(backend, args.requests)
        print(f"overhead per chunk (total - model - queue): p50 {overhead['overhead_p50_ms']:.3f} ms, "
              f"p99 {overhead['overhead_p99_ms']:.3f} ms  | model p50 {overhead['model_p50_ms']:.2f} ms, "
              f"round trip p50 {overhead['round_trip_p50_ms']:.2f} ms  ({args.requests} requests)")
        single = measure_throughput(backend, 1, args.duration, max_batch=1, max_wait_ms=0.0,
                                    clients_in_process=args.clients_in_process)
        many = measure_throughput(backend, args.robots, args.duration, max_batch=args.robots,
                                  max_wait_ms=args.max_wait_ms, clients_in_process=args.clients_in_process)
        backend.close()
    ratio = many["chunks_per_s"] / single["chunks_per_s"] if single["chunks_per_s"] else float("nan")
    print(f"throughput, 1 robot (no batching): {single['chunks_per_s']:.1f} chunks/s")
    print(f"throughput, {args.robots} robots (max_batch {args.robots}, max_wait {args.max_wait_ms} ms): "
          f"{many['chunks_per_s']:.1f} chunks/s, mean batch {many['mean_batch_size']:.2f}, "
          f"per robot {many['per_robot_chunks']}")
    print(f"batching speed-up: {ratio:.2f}x")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(
            {"backend": args.backend, "size": args.size, "overhead": overhead, "single": single, "batched": many,
             "speedup": ratio}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
