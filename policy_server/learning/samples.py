"""Training samples from demos: which frame's images, which conditioning state, which label chunk.

Plain training: images, state and label from the same frame (Δ = 0). VLASH training (`latency_s`
given): per frame `copies` offsets Δ = k / fps with k drawn uniformly from the latency range; the
label is the expert's plan from the conditioning state for the frame's scene, and Δ is `exec_offset_s`.
The conditioning state is, by `vlash_state`:
- `measured`: the recorded (measured) state k ticks later;
- `commanded`: the command for the tick before the chunk's first one, k − 1 ticks later (k ≥ 1) —
  exactly what the `commanded` rollforward (the vlash preset) hands the policy at deployment, where the
  arm lags its command, so the measured future state is a pairing the policy never gets;
- `stale_plan`: the row for tick t + k − 1 of the expert's plan made k ticks *before* the frame (from the state
  and scene then). At deployment the commands a rollforward adds up come from a chunk requested about one latency
  earlier, so they head for wherever the target was then; the recorded commands (`commanded`) came from a planner
  that saw every target jump within its replanning period, so a policy trained on them rarely sees a rolled-forward
  state that heads the wrong way (measured in session 30: no better than `commanded` on reach_jump).
`plain_copy` adds each frame's Δ = 0 sample (measured state, offset 0), which is what clients without
rollforward send, so one policy serves both (with an `exec_offset_s` input it can tell them apart).

Recorded prefixes (`build_recorded_prefix_samples`, training-time RTC): the committed rows are the commands the
robot actually sent after frame t (from an older plan, as at deployment), and the rest of the label is the
expert's plan from the last of them — so the policy learns to continue whatever it was committed to, not only
its own first rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from policy_server.learning.demos import Demos
from policy_server.learning.labels import expert_chunks, recorded_chunks
from policy_server.model_io import task_words


@dataclass(eq=False)
class Samples:
    frame: np.ndarray  # [M] frame whose images (and scene) are used
    state: np.ndarray  # [M, S] conditioning state
    exec_offset_s: np.ndarray  # [M] Δ in seconds
    task: np.ndarray  # [M, V] bag of words
    target: np.ndarray  # [M, H, A] absolute joint targets
    prefix_rows: np.ndarray | None = None  # [M] committed rows fixed per sample (recorded prefixes), else None

    def __len__(self) -> int:
        return int(self.frame.shape[0])

    def subset(self, mask: np.ndarray) -> Samples:
        rows = None if self.prefix_rows is None else self.prefix_rows[mask]
        return Samples(self.frame[mask], self.state[mask], self.exec_offset_s[mask], self.task[mask], self.target[mask],
                       rows)


def vocabulary(instructions: Sequence[str]) -> list[str]:
    return sorted({w for text in set(instructions) for w in task_words(text)})


def bag_of_words(instructions: Sequence[str], vocab: Sequence[str]) -> np.ndarray:
    index = {w: i for i, w in enumerate(vocab)}
    cache: dict[str, np.ndarray] = {}
    out = np.zeros((len(instructions), len(vocab)), np.float32)
    for i, text in enumerate(instructions):
        if text not in cache:
            row = np.zeros(len(vocab), np.float32)
            for w in task_words(text):
                if w in index:
                    row[index[w]] = 1.0
            cache[text] = row
        out[i] = cache[text]
    return out


def build_samples(demos: Demos, vocab: Sequence[str], chunk_length: int, labels: str = "expert",
                  latency_s: tuple[float, float] | None = None, copies: int = 1, seed: int = 0,
                  vlash_state: str = "measured", plain_copy: bool = False, label_workers: int = 1) -> Samples:
    frames, states, offsets = _conditioning(demos, latency_s, copies, seed, vlash_state, plain_copy, chunk_length,
                                            label_workers)
    instructions = [demos.instructions[i] for i in frames]
    if labels == "expert":
        target = expert_chunks(states, demos.environment_states[frames], instructions, chunk_length, demos.fps, offsets,
                               label_workers)
    elif labels == "recorded":
        cond = np.minimum(frames + np.round(offsets * demos.fps).astype(np.int64), demos.episode_end[frames] - 1)
        target = recorded_chunks(demos.actions, demos.episode_end, chunk_length)[cond]
    else:
        raise ValueError(f"labels must be 'expert' or 'recorded', got {labels!r}")
    return Samples(frames, states, offsets, bag_of_words(instructions, vocab), target)


def build_recorded_prefix_samples(demos: Demos, vocab: Sequence[str], chunk_length: int, prefix_ticks: tuple[int, int],
                                  free_fraction: float, seed: int = 0, label_workers: int = 1) -> Samples:
    """One sample per frame t, conditioned on the measured state s_t with frame t's images: d committed rows
    (0 for a `free_fraction` share, else uniform in `prefix_ticks`, at least 1, never past the episode's end) are the
    recorded commands a_t … a_{t+d−1}; the rows after them are the expert's plan from a_{t+d−1} (the command before
    the continuation's first tick) for frame t's scene, d ticks on."""
    lo, hi = prefix_ticks
    if not 0 <= lo <= hi < chunk_length:
        raise ValueError(f"prefix_ticks must satisfy 0 <= lo <= hi < chunk_length, got {prefix_ticks}")
    n = len(demos)
    rng = np.random.default_rng([seed, 0x9EF1])
    frames = np.arange(n)
    rows = rng.integers(max(1, lo), max(1, hi) + 1, size=n)
    rows[rng.random(n) < free_fraction] = 0
    rows = np.minimum(rows, demos.episode_end - frames)  # the commands after frame t within its episode
    last = frames + np.maximum(rows, 1) - 1
    plan_from = np.where(rows[:, None] > 0, demos.actions[last], demos.states)
    instructions = [demos.instructions[i] for i in frames]
    plans = expert_chunks(plan_from.astype(np.float32), demos.environment_states, instructions, chunk_length, demos.fps,
                          (rows / demos.fps).astype(np.float32), label_workers)
    target = np.empty_like(plans)
    for d in np.unique(rows):
        sel = rows == d
        if d:
            target[sel, :d] = demos.actions[frames[sel, None] + np.arange(d)]
        target[sel, d:] = plans[sel, : chunk_length - d]
    return Samples(frames, demos.states.copy(), np.zeros(n, np.float32), bag_of_words(instructions, vocab), target,
                   rows.astype(np.int64))


VLASH_STATES = ("measured", "commanded", "stale_plan")


def _conditioning(demos: Demos, latency_s: tuple[float, float] | None, copies: int, seed: int,
                  vlash_state: str, plain_copy: bool, chunk_length: int = 50,
                  label_workers: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image frame, conditioning state, exec_offset_s) of every sample."""
    if vlash_state not in VLASH_STATES:
        raise ValueError(f"vlash_state must be one of {', '.join(VLASH_STATES)}, got {vlash_state!r}")
    n = len(demos)
    plain = (np.arange(n), demos.states, np.zeros(n, np.float32))
    if latency_s is None:
        return plain
    lo, hi = (int(round(x * demos.fps)) for x in latency_s)
    if vlash_state != "measured":
        lo, hi = max(lo, 1), max(hi, 1)
    rng = np.random.default_rng([seed, 0xF1A5])
    frames = np.tile(np.arange(n), copies)
    last = demos.episode_end[frames] - 1
    ticks = rng.integers(lo, hi + 1, size=len(frames))
    if vlash_state == "measured":
        cond = np.minimum(frames + ticks, last)
        vlash = (frames, demos.states[cond], ((cond - frames) / demos.fps).astype(np.float32))
    elif vlash_state == "commanded":
        cond = np.minimum(frames + ticks - 1, last)
        vlash = (frames, demos.actions[cond], ((cond + 1 - frames) / demos.fps).astype(np.float32))
    else:
        vlash = (frames, _stale_plan_states(demos, frames, ticks, chunk_length, label_workers),
                 (ticks / demos.fps).astype(np.float32))
    if not plain_copy:
        return vlash
    return tuple(np.concatenate([a, b]) for a, b in zip(plain, vlash, strict=True))  # type: ignore[return-value]


def _stale_plan_states(demos: Demos, frames: np.ndarray, ticks: np.ndarray, chunk_length: int,
                       label_workers: int) -> np.ndarray:
    """Row t + k − 1 of the expert's plan made at frame t − k (clamped to the episode's first frame) from the
    measured state and the scene at that frame."""
    ends, lengths = np.unique(demos.episode_end, return_counts=True)
    start = demos.episode_end - lengths[np.searchsorted(ends, demos.episode_end)]
    planned_at = np.maximum(frames - ticks, start[frames])
    plans = expert_chunks(demos.states[planned_at], demos.environment_states[planned_at],
                          [demos.instructions[i] for i in planned_at], chunk_length, demos.fps, None, label_workers)
    rows = np.minimum(frames + ticks - 1 - planned_at, chunk_length - 1)
    return plans[np.arange(len(frames)), rows].astype(np.float32)
