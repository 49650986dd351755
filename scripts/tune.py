"""Compare strategy variants on the tuning seeds (0–99; reports use 1000+) and print one compact line per cell.

    python scripts/tune.py TASKS LATENCIES SEEDS NAME[=JSON] ...
    python scripts/tune.py track 200 0-19 vlash_rail 'vlash_rail_rf={"preset":"vlash_rail","rollforward":"commanded"}'

NAME alone is a preset; NAME=JSON is a variant ({"preset": ..., <strategy field>: ...}). Environment: W = worker
processes (2), OFF=1 = the expert declares exec_offset_s, LAG = EvalConfig.expert_lag_s (0).
"""

from __future__ import annotations

import json
import os
import sys

from sim.eval.grid import load_eval_config
from sim.eval.runner import run_grid


def _fmt(value: float | None, scale: float = 1.0, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value * scale)


def main(argv: list[str]) -> None:
    tasks, lats, seeds, *specs = argv
    variants: dict[str, dict] = {}
    names = []
    for arg in specs:
        name, _, spec = arg.partition("=")
        names.append(name)
        if spec:
            variants[name] = json.loads(spec)
    cfg = load_eval_config(None, {"tasks": tasks, "latencies_ms": lats, "seeds": seeds, "strategies": names,
                                  "variants": variants, "reference": False, "workers": int(os.environ.get("W", "2")),
                                  "max_duration_s": 40, "policy_exec_offset": os.environ.get("OFF") == "1",
                                  "expert_lag_s": float(os.environ.get("LAG", "0"))})
    print(f"{'task':15s} {'strategy':22s} lat  succ  react  rcmd  hit   done  jerk   preDa  clips")
    for r in run_grid(cfg, progress=False).rows:
        print(f"{r['task']:15s} {r['strategy']:22s} {r['latency_ms']:.0f} {100 * r['success_rate']:4.0f}% "
              f"{_fmt(r.get('reaction_s_mean'), 1000, '{:5.0f}')} {_fmt(r.get('reaction_cmd_s_mean'), 1000, '{:5.0f}')} "
              f"{_fmt(r.get('time_to_hit_s_mean'))} {_fmt(r.get('completion_time_s'))} "
              f"{_fmt(r.get('rms_jerk'), 1, '{:6.1f}')} {_fmt(r.get('junction_pre_da_p95'), 1, '{:6.1f}')} "
              f"{_fmt(r.get('clip_ticks'), 1, '{:4.1f}')}")


if __name__ == "__main__":
    main(sys.argv[1:])
