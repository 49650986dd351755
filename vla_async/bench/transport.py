"""`vla-async bench transport`: round trips of the reference payload over real ZeroMQ.

Three 224×224×3 uint8 cameras + 14-D state → a 50×14 float32 chunk, through the real
PolicyClient and a real PolicyServer (linear backend, images ignored so the model costs ~nothing)
in a separate process, back-to-back and paced. The reference, measured in the same run on the same
cores: a bare ZeroMQ DEALER/ROUTER exchange of the same frames (`vla_async.bench.raw_zmq`), so the
printed ratio is what the protocol and the runtime cost on top of ZeroMQ. Both run in alternating
blocks (`--blocks`), so load that comes and goes on a shared machine hits both alike. Prints
numbers; never passes or fails on time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from vla_async.bench.raw_zmq import FLOOR_MODES, ClientCodec, RawDealer, wait_for_slot
from vla_async.config import NetworkConfig
from vla_async.local_server import LocalServer
from vla_async.messages import ActionChunk, Observation
from vla_async.protocol import encode
from vla_async.reference_specs import reference_robot_spec
from vla_async.transport import PolicyClient, ReceivedChunk


def summarize_ms(values_s: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/mean/max in milliseconds of a list of durations in seconds."""
    ms = np.asarray(values_s, dtype=np.float64) * 1e3
    if ms.size == 0:
        return {k: float("nan") for k in ("p50", "p90", "p99", "mean", "max")}
    return {"p50": float(np.percentile(ms, 50)), "p90": float(np.percentile(ms, 90)),
            "p99": float(np.percentile(ms, 99)), "mean": float(ms.mean()), "max": float(ms.max())}


def reference_observation(request_id: int, images: dict[str, np.ndarray], state_dim: int = 14) -> Observation:
    return Observation(request_id=request_id, tick=request_id, exec_tick=request_id,
                       state=np.full(state_dim, 0.01 * (request_id % 100), np.float32), images=images)


def run_round_trips(client: PolicyClient, images: dict[str, np.ndarray], n: int, first_id: int,
                    period_s: float = 0.0, timeout_s: float = 5.0,
                    spin_s: float = 0.0) -> tuple[list[float], list[ReceivedChunk], int]:
    """`n` request/reply cycles (one in flight); `period_s` > 0 paces submissions on a fixed grid;
    `spin_s` is passed to `PolicyClient.wait` (busy-poll before blocking)."""
    rtts: list[float] = []
    replies: list[ReceivedChunk] = []
    failures = 0
    start = time.perf_counter()
    for i in range(n):
        wait_for_slot(start, i, period_s)
        rid = first_id + i
        obs = reference_observation(rid, images)  # the caller's work, outside the timer (as for the raw frames)
        t0 = time.perf_counter()
        client.submit(obs)
        got = None
        while got is None and client.wait(timeout_s, spin_s=spin_s):
            for item in client.poll():
                if getattr(item, "request_id", None) == rid or (
                        isinstance(item, ReceivedChunk) and item.chunk.request_id == rid):
                    got = item
        if not isinstance(got, ReceivedChunk):
            failures += 1
            continue
        rtts.append(time.perf_counter() - t0)
        replies.append(got)
    return rtts, replies, failures


def _payload_bytes(images: dict[str, np.ndarray], encoding: str) -> tuple[int, int]:
    obs = encode(reference_observation(0, images), image_encoding=encoding)
    chunk = encode(ActionChunk(0, 0, np.zeros((50, 14), np.float32)))
    return sum(memoryview(f).nbytes for f in obs), sum(memoryview(f).nbytes for f in chunk)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="vla-async bench transport", description=__doc__)
    parser.add_argument("--n", type=int, default=2000, help="back-to-back round trips")
    parser.add_argument("--paced-n", type=int, default=250, help="round trips paced at --paced-hz")
    parser.add_argument("--paced-hz", type=float, default=50.0)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--blocks", type=int, default=10,
                        help="alternate vla-async and the raw reference in this many blocks per mode")
    copy = parser.add_mutually_exclusive_group()
    copy.add_argument("--zero-copy", dest="zero_copy", action="store_true", help="send array frames without copying")
    copy.add_argument("--copy", dest="zero_copy", action="store_false", help="copy array frames (default)")
    parser.add_argument("--spin-us", type=float, default=0.0,
                        help="client busy-polls this long before blocking for a reply (0 = always block)")
    parser.add_argument("--image-encoding", choices=("raw", "jpeg"), default="raw")
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="do not pin the client to CPU 0 and the server to CPU 1 (pinning keeps the two "
                             "processes from competing for one core, as on separate machines)")
    parser.add_argument("--floor", action="store_true",
                        help="also measure the floor: minimal single-purpose Python peers with the real codec "
                             "(see vla_async.bench.raw_zmq), in the same alternating blocks")
    parser.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    args = parser.parse_args(list(argv))

    rng = np.random.default_rng(0)
    spec = reference_robot_spec()
    images = {c.name: rng.integers(0, 256, c.shape, dtype=np.uint8) for c in spec.cameras}
    obs_bytes, chunk_bytes = _payload_bytes(images, args.image_encoding)
    server_args = ["--backend.name=linear", "--backend.options.use_images=false", "--log_level=warning"]
    results: dict[str, Any] = {"payload": {"cameras": len(images), "image_shape": [224, 224, 3], "state_dim": 14,
                                           "chunk_shape": [50, 14], "bytes_per_observation": obs_bytes,
                                           "bytes_per_chunk": chunk_bytes},
                               "zero_copy": args.zero_copy, "image_encoding": args.image_encoding,
                               "spin_us": args.spin_us}
    pinned = args.pin and hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2
    results["pinned"] = pinned
    own_cpus = os.sched_getaffinity(0) if pinned else None
    server_cpus = None
    if own_cpus is not None:
        client_cpu, server_cpu = sorted(own_cpus)[:2]
        os.sched_setaffinity(0, {client_cpu})
        server_cpus = {server_cpu}
    try:
        with LocalServer(server_args, cpus=server_cpus) as server, _RawEcho(server_cpus) as echo, \
                _FloorEchoes(server_cpus, args.floor) as floors:
            _run_modes(args, server.port, (server.process.pid, echo.process.pid), echo.port, spec, images,
                       results, floors)
    finally:
        if own_cpus is not None:
            os.sched_setaffinity(0, own_cpus)
    _print(results)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
        print(f"wrote {args.json}")
    return 0


def _block_sizes(n: int, blocks: int) -> list[int]:
    """`n` split into `blocks` near-equal positive parts (fewer when n < blocks)."""
    blocks = max(1, min(blocks, n))
    return [n // blocks + (1 if i < n % blocks else 0) for i in range(blocks)]


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system, all threads) process `pid` used so far; None where /proc is missing."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class _Tally:
    """One side's samples of one mode, gathered over its blocks, with the CPU both processes spent."""

    peer_pid: int
    rtts: list[float] = field(default_factory=list)
    replies: list[ReceivedChunk] = field(default_factory=list)
    failures: int = 0
    wall_s: float = 0.0
    client_cpu_s: float = 0.0
    peer_cpu_s: float | None = 0.0

    def measure(self, block: Callable[[], Any]) -> Any:
        """Run `block`, adding its wall time and the CPU time of this process and of the peer."""
        peer0, cpu0, t0 = process_cpu_s(self.peer_pid), time.process_time(), time.perf_counter()
        out = block()
        self.wall_s += time.perf_counter() - t0
        self.client_cpu_s += time.process_time() - cpu0
        peer1 = process_cpu_s(self.peer_pid)
        if peer0 is None or peer1 is None or self.peer_cpu_s is None:
            self.peer_cpu_s = None
        else:
            self.peer_cpu_s += peer1 - peer0
        return out

    def add(self, rtts: list[float], failures: int) -> None:
        self.rtts += rtts
        self.failures += failures

    def cpu_us(self, n: int) -> dict[str, float | None]:
        """CPU microseconds per round trip: this (client) process and the peer (server) process."""
        n = max(1, n)
        return {"client": self.client_cpu_s / n * 1e6,
                "server": None if self.peer_cpu_s is None else self.peer_cpu_s / n * 1e6}


def _run_modes(args: argparse.Namespace, port: int, pids: tuple[int, int], echo_port: int, spec: Any,
               images: dict[str, np.ndarray], results: dict[str, Any], floors: _FloorEchoes) -> None:
    """Warm up, then the back-to-back and the paced runs: the real client, the raw reference (and the
    floor references) in alternating blocks, each on one connection kept for the whole run.
    `pids`: (server, raw echo)."""
    network = NetworkConfig(port=port, zero_copy=args.zero_copy, image_encoding=args.image_encoding)
    raw_frames = [bytes(f) for f in encode(reference_observation(1, images), image_encoding=args.image_encoding)]
    results["raw_zmq"] = {}
    spin_s = args.spin_us * 1e-6
    with PolicyClient(network, "bench", spec) as client, RawDealer(echo_port) as raw, floors.dealers():
        client.connect(timeout_s=10.0)
        run_round_trips(client, images, args.warmup, first_id=1)
        raw.round_trips(raw_frames, args.warmup)
        references = [("raw_zmq", pids[1], partial(raw.round_trips, raw_frames))]
        references += floors.references(raw, pids[1], raw_frames, images)
        for _, _, block in references[1:]:
            block(args.warmup)
        next_id = 1 + args.warmup
        for mode, n, period in (("back_to_back", args.n, 0.0), ("paced", args.paced_n, 1.0 / args.paced_hz)):
            ours, refs = _Tally(pids[0]), [_Tally(pid) for _, pid, _ in references]
            for size in _block_sizes(n, args.blocks):
                got, answered, failed = ours.measure(partial(run_round_trips, client, images, size, next_id,
                                                             period_s=period, spin_s=spin_s))
                next_id += size
                ours.rtts += got
                ours.replies += answered
                ours.failures += failed
                for (_, _, block), ref in zip(references, refs, strict=True):
                    ref.add(*ref.measure(partial(block, size, period_s=period)))
            results[mode] = _mode_result(n, ours, args.paced_hz if period else None)
            for (name, _, _), ref in zip(references, refs, strict=True):
                results.setdefault(name, {})[mode] = {"n": n, "failures": ref.failures,
                                                      "rtt_ms": summarize_ms(ref.rtts),
                                                      "cpu_us": ref.cpu_us(len(ref.rtts))}


def _mode_result(n: int, tally: _Tally, rate_hz: float | None) -> dict[str, Any]:
    server_total = [r.chunk.timing.total_ms / 1e3 for r in tally.replies]
    return {
        "n": n, "failures": tally.failures, "rtt_ms": summarize_ms(tally.rtts),
        "server_ms": summarize_ms(server_total),
        "transport_ms": summarize_ms([a - b for a, b in zip(tally.rtts, server_total, strict=True)]),
        "throughput_msg_s": len(tally.rtts) / tally.wall_s if tally.wall_s > 0 else float("nan"),
        "rate_hz": rate_hz, "cpu_us": tally.cpu_us(len(tally.rtts)),
    }


class _RawEcho:
    """`python -m vla_async.bench.raw_zmq` as a child process (pinned like the policy server)."""

    def __init__(self, cpus: set[int] | None, mode: str = "raw"):
        import subprocess
        import sys

        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
        preexec = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        self.process = subprocess.Popen([sys.executable, "-m", "vla_async.bench.raw_zmq", "--mode", mode],
                                        stdout=subprocess.PIPE, text=True, env=env, preexec_fn=preexec)  # noqa: PLW1509
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError("the raw ZeroMQ echo did not start")
        self.port = int(line.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)

    def __enter__(self) -> _RawEcho:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_FLOOR_LABELS = {  # reference name -> what the row measures
    "floor_codec_client": "codec client -> raw echo (client encodes each observation, decodes each chunk)",
    "floor_decode": "raw client -> decode echo (the server's hardened decode only)",
    "floor_model": "raw client -> model echo (decode + linear chunk + encode, one thread)",
    "floor_model_hop": "raw client -> model echo with a worker thread (one hand-off each way)",
    "floor_both": "codec client -> model echo (both sides' codec and the model: this protocol's floor in Python)",
}


class _FloorEchoes:
    """The floor's echo servers (one child process per mode of `vla_async.bench.raw_zmq`), when asked for."""

    def __init__(self, cpus: set[int] | None, enabled: bool):
        self.echoes = {mode: _RawEcho(cpus, mode) for mode in FLOOR_MODES} if enabled else {}

    def dealers(self) -> contextlib.ExitStack:
        """Open one DEALER per echo (closed with the returned stack)."""
        stack = contextlib.ExitStack()
        self._dealers = {mode: stack.enter_context(RawDealer(echo.port)) for mode, echo in self.echoes.items()}
        return stack

    def references(self, raw: RawDealer, raw_pid: int, raw_frames: list[bytes],
                   images: dict[str, np.ndarray]) -> list[tuple[str, int, Callable[..., Any]]]:
        """(name, echo pid, block(n, period_s=...)) of each floor reference; [] when not asked for."""
        if not self.echoes:
            return []
        d, pid = self._dealers, {mode: echo.process.pid for mode, echo in self.echoes.items()}
        codec = ClientCodec(images)
        return [("floor_codec_client", raw_pid, partial(raw.round_trips, None, codec=codec)),
                ("floor_decode", pid["decode"], partial(d["decode"].round_trips, raw_frames)),
                ("floor_model", pid["model"], partial(d["model"].round_trips, raw_frames)),
                ("floor_model_hop", pid["model_hop"], partial(d["model_hop"].round_trips, raw_frames)),
                ("floor_both", pid["model"], partial(d["model"].round_trips, None, codec=codec))]

    def __enter__(self) -> _FloorEchoes:
        return self

    def __exit__(self, *exc: object) -> None:
        for echo in self.echoes.values():
            echo.stop()


def _print(results: dict[str, Any]) -> None:
    p = results["payload"]
    print(f"payload: {p['cameras']}x{tuple(p['image_shape'])} uint8 + {p['state_dim']}-D state -> "
          f"{tuple(p['chunk_shape'])} float32 | {p['bytes_per_observation']} B/observation, "
          f"{p['bytes_per_chunk']} B/chunk | zero_copy={results['zero_copy']} images={results['image_encoding']} "
          f"spin_us={results['spin_us']:g} pinned={results['pinned']}")
    print(f"{'mode':<14}{'n':>6}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'mean ms':>9}{'max ms':>9}"
          f"{'server p50':>12}{'msg/s':>9}{'fail':>6}")
    for mode in ("back_to_back", "paced"):
        r = results[mode]
        rtt = r["rtt_ms"]
        print(f"{mode:<14}{r['n']:>6}{rtt['p50']:>9.3f}{rtt['p90']:>9.3f}{rtt['p99']:>9.3f}{rtt['mean']:>9.3f}"
              f"{rtt['max']:>9.3f}{r['server_ms']['p50']:>12.3f}{r['throughput_msg_s']:>9.1f}{r['failures']:>6}")
    raw = results.get("raw_zmq")
    if raw:
        print("reference: bare ZeroMQ DEALER/ROUTER exchange of the same frames (same run, same cores, "
              "alternating blocks)")
        for mode in ("back_to_back", "paced"):
            r, rtt = raw[mode], raw[mode]["rtt_ms"]
            ratio = results[mode]["rtt_ms"]["p50"] / rtt["p50"] if rtt["p50"] > 0 else float("nan")
            label = {"back_to_back": "raw b2b", "paced": "raw paced"}[mode]
            print(f"{label:<14}{r['n']:>6}{rtt['p50']:>9.3f}{rtt['p90']:>9.3f}{rtt['p99']:>9.3f}"
                  f"{rtt['mean']:>9.3f}{rtt['max']:>9.3f}{'':>12}{'':>9}{r['failures']:>6}   "
                  f"vla-async p50 = {ratio:.2f}x raw")
        print("CPU per round trip in us (user+system, all threads; /proc, 10 ms ticks): what each side costs "
              "whatever the load")
        for mode in ("back_to_back", "paced"):
            ours, ref = results[mode]["cpu_us"], raw[mode]["cpu_us"]
            print(f"{mode:<14}vla-async client {ours['client']:7.0f} server {_us(ours['server'])}   "
                  f"raw client {ref['client']:7.0f} echo {_us(ref['server'])}")
    if "floor_both" in results:
        _print_floor(results)


def _print_floor(results: dict[str, Any]) -> None:
    """The floor rows: p50 of each minimal peer pair, as a multiple of raw, and vla-async against the floor."""
    print("floor: minimal single-purpose Python peers with the real codec (vla_async/bench/raw_zmq.py; same run, "
          "alternating blocks)")
    for mode in ("back_to_back", "paced"):
        raw_p50 = results["raw_zmq"][mode]["rtt_ms"]["p50"]
        for name, label in _FLOOR_LABELS.items():
            r = results[name][mode]
            print(f"  {mode:<13}{r['rtt_ms']['p50']:>7.3f} ms = {r['rtt_ms']['p50'] / raw_p50:5.2f}x raw   {label}"
                  + (f"   fail {r['failures']}" if r["failures"] else ""))
        ours = results[mode]["rtt_ms"]["p50"]
        print(f"  {mode:<13}vla-async p50 = {ours / results['floor_both'][mode]['rtt_ms']['p50']:.2f}x the floor")


def _us(value: float | None) -> str:
    return f"{value:7.0f}" if value is not None else "    n/a"
