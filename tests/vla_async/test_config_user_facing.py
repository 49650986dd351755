"""What a new user meets in the config layer: shipped configs by name, the client's default strategy,
one-line errors that name the field, the value and what is allowed, and `--help` that lists choices."""

from __future__ import annotations

from pathlib import Path

import pytest

import vla_async
from vla_async.config import (
    CONFIG_DIR,
    ClientConfig,
    ConfigError,
    ServerConfig,
    describe_fields,
    load_config,
    strategy_config,
    strategy_names,
)
from vla_async.config.loader import resolve_config_path
from vla_async.config.schema import DEFAULT_STRATEGY, SIM_TASKS


def test_configs_ship_inside_the_package() -> None:
    assert CONFIG_DIR.parent == Path(vla_async.__file__).parent  # package data, not the repository root
    assert {"vlash_rail", "sync", "rail"} <= set(strategy_names())


@pytest.mark.parametrize("spelling", ["server/expert", "server/expert.yaml", "configs/server/expert.yaml"])
def test_a_name_resolves_from_the_package_from_any_directory(spelling: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # not the repository: nothing named configs/ here
    assert resolve_config_path(spelling) == CONFIG_DIR / "server" / "expert.yaml"
    assert load_config(ServerConfig, spelling).backend.name == "expert"


def test_a_path_on_disk_wins_over_a_shipped_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "server").mkdir()
    (tmp_path / "server" / "expert.yaml").write_text("backend: {name: linear}\n")
    assert load_config(ServerConfig, "server/expert.yaml").backend.name == "linear"


def test_unknown_config_name_lists_the_shipped_ones() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(ClientConfig, "client/sm")
    msg = str(info.value)
    assert "client/sim" in msg and "did you mean 'client/sim'" in msg and "\n" not in msg


def test_client_default_strategy_is_the_default_preset() -> None:
    assert ClientConfig().strategy == strategy_config(DEFAULT_STRATEGY)
    assert load_config(ClientConfig, None, []).strategy == strategy_config(DEFAULT_STRATEGY)


@pytest.mark.parametrize("name", ["sync", "rail", "lerobot"])
def test_strategy_name_runs_that_preset_not_just_a_label(name: str) -> None:
    cfg = load_config(ClientConfig, None, [f"--strategy.name={name}"])
    assert cfg.strategy == strategy_config(name)


def test_field_overrides_apply_on_top_of_the_preset() -> None:
    cfg = load_config(ClientConfig, None, ["--strategy.trigger=horizon"])
    assert cfg.strategy == strategy_config(DEFAULT_STRATEGY, trigger="horizon")
    cfg = load_config(ClientConfig, None, ["--strategy.preset=sync", "--strategy.execution_horizon=5"])
    assert cfg.strategy == strategy_config("sync", execution_horizon=5)


def _one_line_error(overrides: list[str]) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(ClientConfig, None, overrides)
    msg = str(info.value)
    assert "\n" not in msg and "http" not in msg and "Traceback" not in msg, msg
    return msg


def test_bad_task_names_the_field_value_and_allowed_values() -> None:
    msg = _one_line_error(["--robot.task=pickplace"])
    assert "robot.task" in msg and "'pickplace'" in msg and "did you mean 'pick_place'" in msg
    assert all(task in msg for task in SIM_TASKS)


def test_bad_literal_lists_allowed_values() -> None:
    msg = _one_line_error(["--strategy.fuser.kind=ralis"])
    assert "strategy.fuser.kind" in msg and "latest_only | lerobot | temporal_ensemble | rail" in msg


def test_unknown_field_suggests_the_close_one() -> None:
    msg = _one_line_error(["--strategy.max_inflight=2"])
    assert "strategy.max_inflight: unknown field" in msg and "did you mean 'max_in_flight'" in msg


def test_unknown_preset_suggests_the_close_one() -> None:
    msg = _one_line_error(["--strategy.preset=vlash-rail"])
    assert "vlash-rail" in msg and "did you mean 'vlash_rail'" in msg and "sync" in msg


def test_help_shows_presets_literal_values_and_the_defaults_that_run() -> None:
    text = "\n".join(describe_fields(ClientConfig, defaults=ClientConfig()))
    assert "<Literal" not in text and "typing." not in text
    assert f"--strategy.preset=<{' | '.join(strategy_names())}>  (default '{DEFAULT_STRATEGY}')" in text
    assert "--robot.task=<reach_jump | track | pick_place | pick_place_push | reach_dodge | track_sweep>" in text
    assert "--robot.kind=<sim | lerobot>" in text
    trigger = strategy_config(DEFAULT_STRATEGY).trigger
    assert f"--strategy.trigger=<horizon | delay | every_tick | queue>  (default {trigger!r})" in text


def test_the_simulator_has_exactly_the_configured_tasks() -> None:
    from sim.tasks import make_task
    from sim.tasks.layout import TASKS

    assert tuple(TASKS) == SIM_TASKS
    for task in SIM_TASKS:
        assert make_task(task).name == task
