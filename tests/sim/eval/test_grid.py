"""Eval config: seeds syntax, grid expansion with the reference, CLI flags, readable errors."""

from __future__ import annotations

import pytest

from sim.eval.cli import parse_args
from sim.eval.grid import EvalConfig, expand_cells, expand_episodes, load_eval_config, parse_seeds
from vla_async.config import ConfigError, build_config


def test_parse_seeds():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("0,3,5-7") == [0, 3, 5, 6, 7]
    assert parse_seeds(4) == [4]
    with pytest.raises(ConfigError):
        parse_seeds("3-1")
    with pytest.raises(ConfigError):
        parse_seeds("x")


def test_expand_adds_reference_once_per_task():
    cfg = EvalConfig(tasks=["reach_jump", "track"], strategies=["sync", "vlash_rail"], latencies_ms=[0, 100],
                     seeds="0-1")
    cells = expand_cells(cfg)
    keys = [c.key for c in cells]
    assert len(keys) == len(set(keys)) == 2 * 4  # sync@0 is the reference, not duplicated
    assert keys[0] == ("reach_jump", "sync", 0.0) and cells[0].is_reference
    assert len(expand_episodes(cfg)) == 16
    lat = {c.key: c.latency for c in cells}[("track", "vlash_rail", 100.0)]
    assert lat.mean_ms == 100 and lat.jitter_ms == pytest.approx(15.0) and lat.distribution == "normal"
    assert {c.key: c.latency for c in cells}[("track", "sync", 0.0)].jitter_ms == 0


def test_variants_and_overrides():
    cfg = EvalConfig(strategies=["vlash_rail_mif2"], variants={"vlash_rail_mif2": {"preset": "vlash_rail",
                     "max_in_flight": 2}}, strategy_overrides={"execution_horizon": 7}, reference=False)
    (cell,) = expand_cells(cfg)
    assert cell.strategy.max_in_flight == 2 and cell.strategy.execution_horizon == 7
    assert cell.strategy.name == "vlash_rail_mif2"
    with pytest.raises(ConfigError, match="strategies: unknown strategy 'nope'"):
        build_config(EvalConfig, {"strategies": ["nope"]})


def test_cli_single_cell_flags_and_overrides():
    _, cfg = parse_args(["--task", "pick_place", "--strategy", "vlash_rail,naive", "--latency_ms", "200",
                         "--seeds", "0-9", "--metrics.hit_radius_m=0.03"])
    assert cfg.tasks == ["pick_place"] and cfg.strategies == ["vlash_rail", "naive"]
    assert cfg.latencies_ms == [200.0] and cfg.seeds == list(range(10)) and cfg.metrics.hit_radius_m == 0.03
    with pytest.raises(ConfigError, match="unknown field"):
        parse_args(["--bogus.field=1"])


@pytest.mark.parametrize("name", ["quick.yaml", "full.yaml", "learned_reach_jump.yaml"])
def test_shipped_grids_load(name):
    cfg = load_eval_config(f"eval/{name}")
    assert expand_cells(cfg) and cfg.tasks
