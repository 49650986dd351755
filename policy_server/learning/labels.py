"""Training targets: action chunks for each frame.

- `expert`: relabel with the stateless scripted expert, `plan(state, env_t, instruction, Δ)`: the
  chunk the expert would send from the conditioning state given what the frame shows. With Δ = 0
  and the frame's own state this is the clean chunk; for VLASH training the conditioning state is
  the recorded state Δ later and the labels are planned from it (never shifted recorded actions,
  which are wrong when the target jumps inside Δ).
- `recorded`: the next H recorded actions (LeRobot's convention), the last one repeated at the end.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vla_async.registry import load

# The labeller, by name (like the backends' registry): the sim's stateless scripted expert. Training
# reads recorded demonstrations and never imports the simulator directly.
EXPERT_PLANNER = "sim.experts:ExpertPolicy"
# Privileged scene targets for the auxiliary loss (the named object and goal positions), by name too.
SCENE_TARGETS = "sim.tasks.layout:scene_targets"


def expert_chunks(states: np.ndarray, envs: np.ndarray, instructions: Sequence[str], chunk_length: int,
                  fps: float, offsets_s: np.ndarray | None = None, workers: int = 1) -> np.ndarray:
    """The expert's chunk for every (state, scene, instruction, offset); `workers` > 1 splits the frames over
    that many processes (the planner is pure Python, ~2 ms a chunk: relabelling 100k frames takes minutes)."""
    offsets = np.zeros(len(states)) if offsets_s is None else np.asarray(offsets_s)
    if workers <= 1 or len(states) < 2 * workers:
        return _plan_all(states, envs, list(instructions), chunk_length, fps, offsets)
    import multiprocessing as mp

    parts = np.array_split(np.arange(len(states)), workers)
    jobs = [(states[i], envs[i], [instructions[j] for j in i], chunk_length, fps, offsets[i]) for i in parts]
    with mp.get_context("spawn").Pool(workers) as pool:
        return np.concatenate(pool.starmap(_plan_all, jobs))


def _plan_all(states: np.ndarray, envs: np.ndarray, instructions: list[str], chunk_length: int, fps: float,
              offsets: np.ndarray) -> np.ndarray:
    expert = load(EXPERT_PLANNER)(chunk_length, fps)
    out = np.empty((len(states), chunk_length, states.shape[1]), np.float32)
    for i in range(len(states)):
        out[i] = expert.plan(states[i], envs[i], instructions[i], float(offsets[i]))
    return out


def recorded_chunks(actions: np.ndarray, episode_end: np.ndarray, chunk_length: int) -> np.ndarray:
    n = len(actions)
    idx = np.arange(n)[:, None] + np.arange(chunk_length)[None, :]
    idx = np.minimum(idx, episode_end[:, None] - 1)
    return actions[idx]



def scene_targets(envs: np.ndarray, instructions: Sequence[str]) -> np.ndarray:
    """[N, K] what each frame's instruction is about (object pose, goal position), from the privileged
    environment state: an auxiliary training target only, never a policy input."""
    return load(SCENE_TARGETS)(envs, instructions)
