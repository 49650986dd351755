"""Time to first rows with and without streamed chunks, through a real policy server and client on 127.0.0.1.

Starts a PolicyServer (in this process, its own I/O and worker threads) serving a torch policy, connects a real
PolicyClient (its own transport thread) and sends the same observations alternately with `stream` on and off,
one request in flight: prints, per mode, the time from submit to the first rows received (TTFA's network part)
and to the last rows, p50/p95 over the requests. Numbers depend on the machine's load: print `uptime` with them.

    python scripts/stream_ttfa.py --policy runs/rj_stream/policy.pt --requests 40 [--latency-ms 200]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from policy_server.server import PolicyServer
from vla_async.config import BackendConfig, NetworkConfig, ServerConfig
from vla_async.messages import ErrorMessage, Observation
from vla_async.specs import RobotSpec, streaming_plan
from vla_async.transport import PolicyClient


def _server(policy: str, latency_ms: float) -> PolicyServer:
    config = ServerConfig(backend=BackendConfig(name="torch", path=policy, options={"threads": 1}))
    lat = config.injected_latency.model_copy(update={"mean_ms": latency_ms, "distribution": "constant",
                                                     "jitter_ms": 0.0})
    return PolicyServer(config.model_copy(update={"injected_latency": lat}), port=0).start()


def _one(client: PolicyClient, obs: Observation, timeout_s: float = 30.0) -> tuple[float, float, int]:
    """(s to the first rows, s to the last rows, messages) for one request."""
    t0 = time.monotonic()
    client.submit(obs)
    first, parts = None, 0
    while time.monotonic() - t0 < timeout_s:
        client.wait(0.05)
        for item in client.poll():
            if isinstance(item, ErrorMessage):
                raise RuntimeError(item.message)
            parts += 1
            first = item.received_at - t0 if first is None else first
            if item.chunk.final:
                return first, item.received_at - t0, parts
    raise RuntimeError("no final rows within the timeout")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", required=True)
    p.add_argument("--requests", type=int, default=40)
    p.add_argument("--latency-ms", type=float, default=0.0, help="injected latency (spread over the flow steps)")
    args = p.parse_args()
    server = _server(args.policy, args.latency_ms)
    spec = server.backend.spec
    if streaming_plan(spec) is None:
        raise SystemExit("the policy does not declare streaming (train it with --streaming)")
    robot = RobotSpec(name="bench", fps=spec.fps or 30.0, state_names=spec.state_names, action_names=spec.action_names,
                      cameras=spec.cameras)
    rng = np.random.default_rng(0)
    images = {c.name: rng.integers(0, 255, c.shape, dtype=np.uint8) for c in spec.cameras}
    task = (spec.extra.get("tasks") or [""])[0]
    out: dict[bool, list[tuple[float, float, int]]] = {True: [], False: []}
    try:
        with PolicyClient(NetworkConfig(host="127.0.0.1", port=server.port), "ttfa-bench", robot) as client:
            client.connect(timeout_s=60)
            for i in range(2 * args.requests):
                state = (0.2 * rng.standard_normal(robot.state_dim)).astype(np.float32)
                obs = Observation(i, i, i, state, images, task=task, stream=i % 2 == 0)
                out[obs.stream].append(_one(client, obs))
    finally:
        server.stop()
    print(f"policy {args.policy}: {streaming_plan(spec)}; injected latency {args.latency_ms:g} ms; "
          f"{args.requests} requests per mode, alternating")
    for stream, rows in out.items():
        first, last, parts = (np.array(c) for c in zip(*rows, strict=True))
        print(f"  {'streamed' if stream else 'whole   '}  first rows p50 {1e3 * np.median(first):6.1f} ms  "
              f"p95 {1e3 * np.percentile(first, 95):6.1f} ms   last rows p50 {1e3 * np.median(last):6.1f} ms  "
              f"p95 {1e3 * np.percentile(last, 95):6.1f} ms   messages/request {parts.mean():.1f}")


if __name__ == "__main__":
    main()
