"""An evaluation of a learned policy says when its seeds are scenes the policy was trained on (its card)."""

from __future__ import annotations

import json
from pathlib import Path

from sim.eval.grid import load_eval_config
from sim.eval.seen_scenes import seen_scenes, seen_scenes_note, training_scenes
from vla_async.config import BackendConfig

SHIPPED = Path(__file__).resolve().parents[3] / "models" / "pick_place" / "policy.spec.json"


def card_with(tmp_path: Path, scene_seeds) -> BackendConfig:
    """A copy of the shipped pick_place card with `scene_seeds` (None: the key removed); the backend config of
    a model next to it (the model file itself is not read)."""
    doc = json.loads(SHIPPED.read_text())
    if scene_seeds is None:
        doc["model"]["training"].pop("scene_seeds")
    else:
        doc["model"]["training"]["scene_seeds"] = scene_seeds
    (tmp_path / "policy.spec.json").write_text(json.dumps(doc))
    return BackendConfig(name="onnx", path=str(tmp_path / "policy.onnx"))


def test_the_shipped_cards_name_their_training_scenes():
    pick_place = set(range(400)) | set(range(100_000, 100_250))  # expert demos + DAgger episodes (session 27)
    for task, seeds in (("pick_place", pick_place), ("reach_jump", set(range(200))), ("track_sweep", set(range(300)))):
        backend = BackendConfig(name="onnx", path=str(SHIPPED.parents[1] / task / "policy.onnx"))
        assert training_scenes(backend) == {task: seeds}


def test_overlap_is_per_task_and_a_recording_without_a_task_counts_for_every_task(tmp_path):
    backend = card_with(tmp_path, {"pick_place": "0-399", "reach_jump": "10,12"})
    assert seen_scenes(backend, ["pick_place", "reach_jump", "track"], [5, 12, 450, 1000]) == {
        "pick_place": [5, 12], "reach_jump": [12]}
    assert seen_scenes(backend, ["pick_place"], range(1000, 1100)) == {}
    wildcard = card_with(tmp_path, {"*": "0-9"})
    assert seen_scenes(wildcard, ["track"], [3, 50]) == {"track": [3]}


def test_the_note_names_the_seen_seeds_and_the_training_range(tmp_path):
    backend = card_with(tmp_path, {"pick_place": "0-399"})
    config = load_eval_config(None, {"tasks": ["pick_place"], "seeds": "0-99,1000-1009",
                                     "backend": backend.model_dump()})
    note = seen_scenes_note(config)
    assert note is not None and "pick_place: 100 of the 110 seeds (0-99; trained on 0-399)" in note
    held_out = load_eval_config(None, {"tasks": ["pick_place"], "seeds": "500-599", "backend": backend.model_dump()})
    assert seen_scenes_note(held_out) is None


def test_no_card_an_old_card_or_a_garbled_one_says_nothing(tmp_path):
    assert training_scenes(None) is None
    assert training_scenes(BackendConfig(name="expert")) is None
    assert training_scenes(BackendConfig(name="onnx", path=str(tmp_path / "missing" / "policy.onnx"))) is None
    assert training_scenes(card_with(tmp_path, None)) is None
    assert training_scenes(card_with(tmp_path, {"pick_place": "zero-ten"})) is None
    (tmp_path / "policy.spec.json").write_text("{not json")
    assert training_scenes(BackendConfig(name="onnx", path=str(tmp_path / "policy.onnx"))) is None
