"""Rewrite the README's main-lane line (test count and time) from a pytest run.

    python scripts/readme_numbers.py                    # runs the main lane, then rewrites README.md
    python scripts/readme_numbers.py --from pytest.txt  # uses a saved `pytest -q` output instead

The line sits between `<!-- main-lane -->` and `<!-- /main-lane -->` in README.md.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- main-lane -->", "<!-- /main-lane -->"
_SUMMARY = re.compile(r"(?P<counts>\d+ [a-z]+(?:, \d+ [a-z]+)*) in (?P<secs>[\d.]+)s")


def parse_summary(output: str) -> tuple[int, int, float]:
    """(passed, skipped, seconds) from pytest's last summary line; ValueError when absent or failing."""
    matches = [m for m in _SUMMARY.finditer(output) if "passed" in m["counts"]]
    if not matches:
        raise ValueError("no pytest summary line ('N passed ... in S s') in the output")
    counts, secs = matches[-1]["counts"], float(matches[-1]["secs"])
    if re.search(r"\d+ (failed|errors?)\b", counts):
        raise ValueError(f"the run did not pass: {counts}")
    number = {word: int(n) for n, word in re.findall(r"(\d+) ([a-z]+)", counts)}
    return number["passed"], number.get("skipped", 0), secs


def main_lane_text(passed: int, skipped: int, seconds: float, load: str) -> str:
    skip = f", {skipped} skipped" if skipped else ""
    return f"{passed} tests passed{skip} in {seconds:.0f} s on the 2-core VM (load average {load} at the start)"


def rewrite(readme: str, text: str) -> str:
    if START not in readme or END not in readme:
        raise ValueError(f"README.md has no {START} ... {END} markers")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}{text}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", help="saved pytest output (default: run the main lane now)")
    parser.add_argument("--load", help="load average to state (default: os.getloadavg() now)")
    args = parser.parse_args(argv)
    load = args.load or f"{os.getloadavg()[0]:.1f}"
    if args.source:
        output = Path(args.source).read_text()
    else:
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--ignore=tests/lerobot"]
        output = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True).stdout
    try:
        text = main_lane_text(*parse_summary(output), load)
    except ValueError as exc:
        print(f"readme_numbers: {exc}", file=sys.stderr)
        return 1
    path = ROOT / "README.md"
    path.write_text(rewrite(path.read_text(), text))
    print(f"README.md: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
