"""`vla-async` — one entry point, subcommands implemented where they belong.

The core never imports the server, the client or the simulator at module level: each subcommand
is a `module:function` looked up only when it is used, so `vla-async client` on a robot computer
never needs torch or MuJoCo.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence

from vla_async.extras import install_hint

# name -> (module:function taking argv and returning an exit code, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("policy_server.cli:main", "run the policy server"),
    "client": ("robot_client.cli:main", "run the robot client (real-time loop)"),
    "demo": ("sim.demo:main", "the main job: server + client on a simulated pick-and-place, then a report"),
    "eval": ("sim.eval.cli:main", "evaluate strategies × tasks × latencies (virtual or real time)"),
    "bench": ("vla_async.bench_cli:main", "benchmarks: transport | client | sim | server | fuzz"),
    "sim": ("sim.cli:main", "simulation tools: snapshot (camera PNGs, episode MP4)"),
    "keys": ("vla_async.keys:main", "make CurveZMQ key pairs"),
    "fleet": ("policy_server.fleet.cli:main", "policy server replicas on a Ray cluster: up | status | down (docs/fleet.md)"),
    "calibrate": ("robot_client.calibrate:main", "measure round trip, server time and robot lag; write latency settings"),
    "roundtrip": ("robot_client.roundtrip:main", "start a server and a client on loopback and report round trips"),
    "export-onnx": ("policy_server.export_onnx:main", "export a torch/LeRobot policy to ONNX and check it"),
    "record": ("sim.recording.cli:main", "record expert demonstrations as a LeRobotDataset v3"),
    "train": ("policy_server.learning.cli:main", "train a small visuomotor policy on a recorded dataset"),
}


#: optional top-level modules -> the extra that provides them (a missing one is a line, not a traceback)
_OPTIONAL = {"mujoco": "sim", "matplotlib": "sim", "imageio": "sim", "tqdm": "sim", "torch": "server",
             "onnxruntime": "server", "onnx": "server", "simplejpeg": "jpeg", "lerobot": "lerobot", "ray": "ray"}


def load_entry(target: str) -> Callable[[Sequence[str]], int]:
    module_name, _, func_name = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, func_name)


def usage() -> str:
    lines = ["usage: vla-async <command> [options]  (vla-async <command> --help for its fields)", "", "commands:"]
    lines += [f"  {name:<12} {help_text}" for name, (_, help_text) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"vla-async: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    try:
        return _run_subcommand(name, rest)
    except ModuleNotFoundError as exc:
        if exc.name not in _OPTIONAL:  # a real bug: let it show
            raise
        return _missing_dependency(name, exc.name, _OPTIONAL[exc.name])
    except KeyboardInterrupt:  # Ctrl-C at any stage: a line, not a traceback
        print(f"\nvla-async {name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `vla-async client --help | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0


def _run_subcommand(name: str, rest: list[str]) -> int:
    try:
        entry = load_entry(SUBCOMMANDS[name][0])
    except ModuleNotFoundError as exc:
        extra = _OPTIONAL.get(exc.name or "", "server" if name in ("serve", "export-onnx") else "sim")
        return _missing_dependency(name, exc.name, extra)
    return int(entry(rest) or 0)


def _missing_dependency(name: str, module: str | None, extra: str) -> int:
    print(f"vla-async {name}: missing dependency {module!r}; install the extra: {install_hint(extra)}",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
