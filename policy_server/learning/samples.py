"""Training samples from demos: which frame's images, which conditioning state, which label chunk.

Plain training: images, state and label from the same frame (Δ = 0). VLASH training (`latency_s`
given): per frame `copies` offsets Δ = k / fps with k drawn uniformly from the latency range; the
conditioning state is the recorded state k ticks later (what rollforward hands the policy), the
label is the expert's plan from that state for the frame's scene, and Δ is `exec_offset_s`.
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

    def __len__(self) -> int:
        return int(self.frame.shape[0])

    def subset(self, mask: np.ndarray) -> Samples:
        return Samples(self.frame[mask], self.state[mask], self.exec_offset_s[mask], self.task[mask], self.target[mask])


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
                  latency_s: tuple[float, float] | None = None, copies: int = 1, seed: int = 0) -> Samples:
    n = len(demos)
    frames = np.arange(n)
    if latency_s is None:
        ticks = np.zeros(n, np.int64)
    else:
        lo, hi = (int(round(x * demos.fps)) for x in latency_s)
        rng = np.random.default_rng([seed, 0xF1A5])
        frames = np.tile(frames, copies)
        ticks = rng.integers(lo, hi + 1, size=len(frames))
    cond = np.minimum(frames + ticks, demos.episode_end[frames] - 1)
    offsets = ((cond - frames) / demos.fps).astype(np.float32)
    states = demos.states[cond]
    instructions = [demos.instructions[i] for i in frames]
    if labels == "expert":
        target = expert_chunks(states, demos.environment_states[frames], instructions, chunk_length, demos.fps, offsets)
    elif labels == "recorded":
        target = recorded_chunks(demos.actions, demos.episode_end, chunk_length)[cond]
    else:
        raise ValueError(f"labels must be 'expert' or 'recorded', got {labels!r}")
    return Samples(frames, states, offsets, bag_of_words(instructions, vocab), target)
