"""Seed lists as compact text: `"0-9"` ⇄ [0..9], `"0,3,5-7"` ⇄ [0, 3, 5, 6, 7].

Shared by the evaluation's `seeds` field and the model card, which names the scenes (task, seed) a learned
policy was trained on, so that an evaluation can say when it is not held out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from vla_async.config import ConfigError

__all__ = ["format_seeds", "parse_seeds"]


def parse_seeds(text: str | int | Sequence[int]) -> list[int]:
    """`"0-9"` → 0..9, `"0,3,5-7"` → [0, 3, 5, 6, 7], `4` → [4]; a list is returned as ints."""
    if isinstance(text, int) and not isinstance(text, bool):
        return [text]
    if not isinstance(text, str):
        return [int(s) for s in text]
    seeds: list[int] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            if sep:
                first, last = int(lo), int(hi)
                if last < first:
                    raise ValueError
                seeds.extend(range(first, last + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise ConfigError(f"seeds: cannot read {part!r} (use e.g. 0-9 or 0,3,5-7)") from None
    if not seeds:
        raise ConfigError(f"seeds: no seed in {text!r}")
    return seeds


def format_seeds(seeds: Iterable[int]) -> str:
    """The inverse of `parse_seeds` for a set of non-negative seeds: sorted, runs joined (`[3, 0, 1, 2, 7]` → `"0-3,7"`)."""
    ordered = sorted(set(int(s) for s in seeds))
    runs: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        runs.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(runs)
