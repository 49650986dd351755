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
