"""Compare two `vla-async eval --json` files metric by metric (timing columns excluded).

    python scripts/compare_eval.py before.json after.json [--tol 1e-6]

Exits 1 and lists the differences when any metric of any row or episode differs by more than `tol`
(absolute, or relative for large values); used to show that a refactor left evaluation unchanged.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

TIMING = ("client_cost",)  # wall-clock columns: differ between any two runs
KEYS = ("task", "strategy", "latency_ms", "jitter_ms", "is_reference", "seed")


def _key(item: dict[str, Any]) -> tuple:
    return tuple(item.get(k) for k in KEYS)


def _differs(a: Any, b: Any, tol: float) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() != b.keys() or any(_differs(a[k], b[k], tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) != len(b) or any(_differs(x, y, tol) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, int | float) or not isinstance(b, int | float):
        return a != b
    if math.isnan(a) or math.isnan(b):
        return not (math.isnan(a) and math.isnan(b))
    return abs(a - b) > tol * max(1.0, abs(a), abs(b))


def compare(before: dict[str, Any], after: dict[str, Any], tol: float) -> tuple[int, list[str]]:
    """(values compared, differences) over the rows and the episodes."""
    compared, diffs = 0, []
    for part in ("rows", "episodes"):
        old = {_key(x): x for x in before[part]}
        new = {_key(x): x for x in after[part]}
        if old.keys() != new.keys():
            diffs.append(f"{part}: different sets of cells: {sorted(old.keys() ^ new.keys(), key=str)[:5]}")
        for key in old.keys() & new.keys():
            for field, value in old[key].items():
                if any(t in field for t in TIMING):
                    continue
                compared += 1
                if field not in new[key] or _differs(value, new[key][field], tol):
                    diffs.append(f"{part} {key} {field}: {value!r} -> {new[key].get(field)!r}")
    return compared, diffs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--tol", type=float, default=1e-6)
    args = parser.parse_args(argv)
    with open(args.before) as f:
        before = json.load(f)
    with open(args.after) as f:
        after = json.load(f)
    compared, diffs = compare(before, after, args.tol)
    print(f"{len(before['rows'])} rows, {len(before['episodes'])} episodes, {compared} values compared "
          f"(timing columns {TIMING} skipped), tolerance {args.tol:g}: {len(diffs)} differ")
    for line in diffs[:50]:
        print("  " + line)
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
