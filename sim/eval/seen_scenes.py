"""Is an evaluation of a learned policy held out? Its seeds against the scenes the policy was trained on.

A scene is (sim task, seed): `vla-async record --seed S --episodes N` records seeds S..S+N-1, and `vla-async
train` writes them into the model card (`model.training.scene_seeds`, e.g. `{"pick_place": "0-399"}`; `"*"`
for a recording that did not name its task, which counts for every task). An evaluation on those seeds
measures the policy on layouts it has seen, so its numbers are not held out, and tuning a strategy on them
tunes it to the training set. The project's rule (tune on 0–99, report on 1000+) assumes the tuning seeds are
unseen; for the shipped learned policies they are not, so learned-policy tuning uses 500–599 (docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vla_async.config import BackendConfig
from vla_async.seed_ranges import format_seeds, parse_seeds


def training_scenes(backend: BackendConfig | None) -> dict[str, set[int]] | None:
    """Sim task -> the seeds the backend's model was trained on, from its card; None when there is no card
    (the scripted expert, a model made elsewhere) or the card does not say."""
    if backend is None or not backend.path:
        return None
    from policy_server.backend import BackendError
    from policy_server.model_io import read_card

    try:
        card = read_card(backend.path)
    except (BackendError, OSError, ValueError):
        return None
    scenes = (card.model.get("training") or {}).get("scene_seeds")
    if not isinstance(scenes, dict):
        return None
    try:
        return {str(task): set(parse_seeds(seeds)) for task, seeds in scenes.items()}
    except (ValueError, TypeError):  # a hand-edited card: say nothing rather than fail the evaluation
        return None


def seen_scenes(backend: BackendConfig | None, tasks: Sequence[str], seeds: Sequence[int]) -> dict[str, list[int]]:
    """Task -> the evaluated seeds that are training scenes of the backend's model (tasks with none left out)."""
    scenes = training_scenes(backend)
    if not scenes:
        return {}
    out = {}
    for task in tasks:
        seen = sorted(set(seeds) & (scenes.get(task, set()) | scenes.get("*", set())))
        if seen:
            out[task] = seen
    return out


def seen_scenes_note(config: Any) -> str | None:
    """One warning line when an evaluation's seeds include scenes its learned policy was trained on, else None.
    `config`: an EvalConfig (backend, tasks, seeds)."""
    seen = seen_scenes(config.backend, config.tasks, config.seeds)
    if not seen:
        return None
    scenes = training_scenes(config.backend) or {}
    parts = [f"{task}: {len(s)} of the {len(config.seeds)} seeds ({format_seeds(s)}; trained on "
             f"{format_seeds(scenes.get(task, set()) | scenes.get('*', set()))})" for task, s in seen.items()]
    return (f"note: not held out - the policy {config.backend.path} was trained on these scenes, "
            f"{'; '.join(parts)}. Tune learned policies on seeds it has not seen (500-599 for the shipped ones) "
            "and report on 1000+.")
