"""`vla-async demo --policy`: which policy the demo's server runs."""

from __future__ import annotations

import pytest

from sim import demo
from vla_async.config import ConfigError


def test_auto_serves_the_shipped_learned_policy_when_the_task_has_one_else_the_expert(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "MODELS_DIR", tmp_path)
    (tmp_path / "reach_jump").mkdir()
    (tmp_path / "reach_jump" / "policy.onnx").write_bytes(b"onnx")
    assert demo.policy_backend("auto", "reach_jump") == {"name": "onnx", "path": str(tmp_path / "reach_jump" / "policy.onnx")}
    assert demo.policy_backend("learned", "reach_jump") == demo.policy_backend("auto", "reach_jump")
    assert demo.policy_backend("auto", "pick_place") is None  # nothing shipped: the scripted expert
    assert demo.policy_backend("expert", "reach_jump") is None
    with pytest.raises(ConfigError, match="no learned pick_place policy"):
        demo.policy_backend("learned", "pick_place")
    other = tmp_path / "mine.onnx"
    other.write_bytes(b"onnx")
    assert demo.policy_backend(str(other), "pick_place") == {"name": "onnx", "path": str(other)}


def test_the_demo_runs_on_scenes_the_shipped_policy_never_saw_and_says_so_when_told_otherwise():
    from sim.eval.seen_scenes import seen_scenes_note

    args = demo.build_parser().parse_args([])
    config = demo.demo_config(args)
    assert config.backend is not None  # the learned pick_place policy is the demo's default
    assert args.seed == 1000 and config.seeds == [1000, 1001, 1002]
    assert seen_scenes_note(config) is None
    on_training_scenes = demo.demo_config(demo.build_parser().parse_args(["--compare_seeds", "0-2"]))
    assert "pick_place: 3 of the 3 seeds (0-2; trained on 0-399,100000-100249)" in seen_scenes_note(on_training_scenes)


def test_the_demo_runs_the_default_strategy_and_says_what_it_resolves_to_for_the_served_policy(tmp_path):
    """The shipped pick_place policy takes a committed action prefix, so the default runs real-time chunking with
    it; a plain image policy gets the measured state placed by the servo lag; the scripted expert the command."""
    import json
    import shutil

    from vla_async.config import StrategyConfig
    from vla_async.config.schema import DEFAULT_STRATEGY

    args = demo.build_parser().parse_args([])
    config = demo.demo_config(args)
    assert config.strategies == [DEFAULT_STRATEGY, "sync"] and args.strategy == DEFAULT_STRATEGY
    default = StrategyConfig(preset=DEFAULT_STRATEGY)
    assert demo.conditioning_line(config, default) == (
        "real-time chunking (the committed plan as a prefix) + the command at the capture tick")
    expert = demo.demo_config(demo.build_parser().parse_args(["--policy", "expert"]))
    assert expert.strategies == [DEFAULT_STRATEGY, "sync"]
    assert demo.conditioning_line(expert, default) == "the command at the capture tick"
    shipped = demo.MODELS_DIR / "pick_place" / "policy.onnx"
    card = json.loads(shipped.with_name("policy.spec.json").read_text())
    del card["policy_spec"]["extra"]["action_prefix"]  # the same network exported without the prefix inputs
    card["inputs"] = [i for i in card["inputs"] if i["source"] not in ("action_prefix", "prefix_weights")]
    (tmp_path / "policy.spec.json").write_text(json.dumps(card))
    shutil.copy(shipped, tmp_path / "policy.onnx")
    plain = config.model_copy(update={"backend": config.backend.model_copy(update={"path": str(tmp_path / "policy.onnx")})})
    assert demo.conditioning_line(plain, default) == (
        "the measured state, chunks placed by the servo lag (≤ 4 ticks)")
    (tmp_path / "policy.spec.json").write_text("{not a card")
    assert demo.conditioning_line(plain, default) == "the policy's card could not be read"

def test_a_policy_file_that_does_not_load_is_one_line_not_a_traceback(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("mujoco")
    bad = tmp_path / "policy.onnx"
    bad.write_bytes(b"not a model")
    assert demo.main(["--policy", str(bad), "--no-video", "--quiet", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vla-async demo: eval backend 'onnx'") and "Traceback" not in err
